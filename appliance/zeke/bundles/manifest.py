"""The bundle manifest (``bundle.json``): what a bundle holds and what it needs.

The manifest lists every file of the bundle with its size and sha256, carries the model specs
of the models directory's ``manifest.toml``, the bundle's name and version and the oldest zeke
that can run its models. The signature covers the manifest's exact bytes, so the manifest is
serialised canonically (sorted keys, no spaces) to make packing reproducible.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zeke.bundles.errors import BundleError

FORMAT = 1
MANIFEST_MEMBER = "bundle.json"
SIGNATURE_MEMBER = "bundle.sig"
MODELS_MANIFEST = "manifest.toml"
RESERVED_NAMES = frozenset({MANIFEST_MEMBER, SIGNATURE_MEMBER})

MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 4096
MAX_FILE_BYTES = 1 << 30
MAX_TOTAL_BYTES = 2 << 30
MAX_FILES = 256
MAX_PATH_CHARS = 100  # the ustar name field, so no long-name extension is ever needed
MAX_PATH_DEPTH = 4

_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_ZEKE_VERSION = r"^[0-9]+(\.[0-9]+){0,3}([a-z]+[0-9]*)?(\.?(post|dev)[0-9]*)?$"
_SHA256 = r"^[0-9a-f]{64}$"


def show(name: str) -> str:
    """A member name made safe to print: quoted, control and odd characters escaped."""
    return json.dumps(name)


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe relative file path inside a bundle, or None if it is."""
    if not path:
        return "has an empty name"
    if path.startswith("/"):
        return "has an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "escapes the bundle directory (path traversal with '..')"
    if len(path) > MAX_PATH_CHARS:
        return f"has a name longer than {MAX_PATH_CHARS} characters"
    if len(parts) > MAX_PATH_DEPTH:
        return f"is nested deeper than {MAX_PATH_DEPTH} directories"
    if not all(_COMPONENT.fullmatch(part) for part in parts):
        return "is not a plain relative path (letters, digits, '.', '_', '-' and '/' only)"
    return None


class FileEntry(BaseModel):
    """One file of the bundle, as it is unpacked into the models directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int = Field(ge=0, le=MAX_FILE_BYTES)
    sha256: str = Field(pattern=_SHA256)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        problem = path_problem(value)
        if problem:
            raise ValueError(f"file {show(value)} {problem}")
        if value in RESERVED_NAMES:
            raise ValueError(f"file {show(value)} uses a reserved name")
        return value


class ModelSpec(BaseModel):
    """One model as ``manifest.toml`` describes it; fields zeke does not know are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    file: str
    sha256: str = Field(pattern=_SHA256)
    size: int | None = Field(default=None, ge=0)
    task: str = Field(min_length=1)
    runtime: str = "cpu"
    input_shape: list[int] = Field(default_factory=list)
    input_dtype: str = ""
    preprocess: Any = ""
    labels: list[str] | None = None
    source: str = ""
    license: str = ""


class BundleManifest(BaseModel):
    """The signed description of a bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    name: str = Field(pattern=_NAME)
    version: str = Field(pattern=_VERSION)
    min_zeke_version: str = Field(pattern=_ZEKE_VERSION)
    files: list[FileEntry] = Field(min_length=1, max_length=MAX_FILES)
    models: dict[str, ModelSpec] = Field(min_length=1)

    @field_validator("files")
    @classmethod
    def _sorted_unique(cls, files: list[FileEntry]) -> list[FileEntry]:
        paths = [f.path for f in files]
        if paths != sorted(set(paths)):
            raise ValueError("files must be unique and sorted by path")
        if MODELS_MANIFEST not in paths:
            raise ValueError(f"files must include {MODELS_MANIFEST}")
        if sum(f.size for f in files) > MAX_TOTAL_BYTES:
            raise ValueError(f"files exceed {MAX_TOTAL_BYTES} bytes in total")
        dirs = {p.rsplit("/", n)[0] for p in paths for n in range(1, p.count("/") + 1)}
        clash = sorted(dirs & set(paths))
        if clash:
            raise ValueError(f"{show(clash[0])} is both a file and a directory")
        return files

    @model_validator(mode="after")
    def _models_in_files(self) -> BundleManifest:
        by_path = {f.path: f for f in self.files}
        for name, spec in self.models.items():
            entry = by_path.get(spec.file)
            if entry is None:
                raise ValueError(f"model {name} names file {show(spec.file)}, not in files")
            if entry.sha256 != spec.sha256 or (spec.size is not None and entry.size != spec.size):
                raise ValueError(f"model {name}: its sha256/size differ from its file entry")
        return self

    @property
    def payload_bytes(self) -> int:
        return sum(f.size for f in self.files)


def canonical_json(document: dict[str, Any]) -> bytes:
    """The one byte form of a JSON document: sorted keys, no spaces, UTF-8, final newline."""
    try:
        text = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise BundleError(
            f"the manifest holds a value JSON cannot carry: {err}",
            hint="use only strings, numbers, booleans, arrays and tables in manifest.toml",
        ) from None
    return text.encode("utf-8") + b"\n"


def manifest_bytes(manifest: BundleManifest) -> bytes:
    return canonical_json(manifest.model_dump(mode="json"))


def parse_manifest(data: bytes) -> BundleManifest:
    """Parse signed manifest bytes; a bad one is a bundle error, never a traceback."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = (
            "it is nested too deeply"
            if isinstance(err, RecursionError)
            else str(err)
            if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError))
            else "it holds a number too long to read"  # past Python's 4,300 digits
        )
        raise BundleError(
            f"{MANIFEST_MEMBER} is not valid JSON: {reason}",
            hint="re-pack the bundle with `zeke models pack`",
        ) from None
    if not isinstance(document, dict):
        raise BundleError(
            f"{MANIFEST_MEMBER} is not a JSON object",
            hint="re-pack the bundle with `zeke models pack`",
        )
    fmt = document.get("format")
    if fmt != FORMAT:
        raise BundleError(
            f"bundle format {fmt!r} is not supported (this zeke reads format {FORMAT})",
            hint="upgrade zeke, or ask the publisher for a format-1 bundle",
        )
    try:
        return BundleManifest.model_validate(document)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise BundleError(
            f"{MANIFEST_MEMBER} is invalid at {where}: {first['msg']}",
            hint="re-pack the bundle with `zeke models pack`",
        ) from None


def _release(version: str) -> tuple[int, ...]:
    numbers = re.match(r"[0-9]+(\.[0-9]+)*", version)
    parts = tuple(int(p) for p in numbers.group(0).split(".")) if numbers else (0,)
    return parts + (0,) * (4 - len(parts))


def version_at_least(current: str, required: str) -> bool:
    """``current >= required`` by PEP 440 when ``packaging`` is present, else by release."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging is usually there
        return _release(current) >= _release(required)
    try:
        return Version(current) >= Version(required)
    except InvalidVersion:
        return _release(current) >= _release(required)
