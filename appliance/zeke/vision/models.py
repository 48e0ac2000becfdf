"""The models manifest, where the models live, and sha256 checks on every load.

A model file is never trusted by name: each load hashes the file and compares it with the
manifest, and a mismatch is refused with the file, the expected and the actual hash.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from zeke.errors import ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST_NAME = "manifest.toml"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelEntry:
    """One model as the manifest describes it."""

    name: str
    file: str
    sha256: str
    task: str
    runtime: str = "cpu"
    input_shape: tuple[int, ...] = ()
    input_dtype: str = "float32"
    preprocess: str = ""
    labels: tuple[str, ...] = ()
    license: str = ""
    source: str = ""
    input_quant: tuple[float, int] | None = None
    output_quant: tuple[float, int] | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Manifest:
    directory: Path
    models: dict[str, ModelEntry]

    def entry(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ModelError(
                f"model '{name}' is not in {self.directory / MANIFEST_NAME} (known: {known})",
                hint="reinstall the models bundle or run `zeke models list`",
            ) from None

    def path(self, name: str) -> Path:
        return self.directory / self.entry(name).file


def _store_current() -> Path | None:
    store = Path(os.environ.get("ZEKE_MODEL_STORE", "/var/lib/zeke/models"))
    current = store / "current"
    return current if (current / MANIFEST_NAME).is_file() else None


def candidate_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Model directories in the order they are tried (see docs/architecture.md)."""
    dirs: list[Path] = []
    if explicit:
        return [Path(explicit)]
    env = os.environ.get("ZEKE_MODELS_DIR")
    if env:
        return [Path(env)]
    current = _store_current()
    if current is not None:
        dirs.append(current)
    dirs.append(_PACKAGE_DIR / "factory_models")  # inside an installed wheel
    dirs.append(_PACKAGE_DIR.parent.parent / "models")  # a source checkout
    return dirs


def models_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The first candidate directory that holds a manifest."""
    tried = candidate_dirs(explicit)
    for directory in tried:
        if (directory / MANIFEST_NAME).is_file():
            return directory
    raise ModelError(
        "no models directory with a manifest.toml found (tried: "
        + ", ".join(str(d) for d in tried)
        + ")",
        hint="set [vision] models_dir in the config, or reinstall zeke with its models",
    )


def _entry_from(name: str, doc: dict) -> ModelEntry:
    known = {f for f in ModelEntry.__dataclass_fields__ if f not in ("name", "extra")}
    values = {k: v for k, v in doc.items() if k in known}
    for key in ("input_shape", "labels"):
        if key in values:
            values[key] = tuple(values[key])
    for key in ("input_quant", "output_quant"):
        if key in values:
            scale, zero = values[key]
            values[key] = (float(scale), int(zero))
    missing = [k for k in ("file", "sha256", "task") if k not in values]
    if missing:
        raise ModelError(f"manifest entry '{name}' lacks {', '.join(missing)}")
    extra = {k: v for k, v in doc.items() if k not in known}
    return ModelEntry(name=name, extra=extra, **values)


@lru_cache(maxsize=8)
def _load_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ModelError(f"{path} is not valid TOML: {err}") from None
    models = {name: _entry_from(name, entry) for name, entry in doc.get("models", {}).items()}
    return Manifest(directory=directory, models=models)


def load_manifest(directory: str | os.PathLike | None = None) -> Manifest:
    return _load_manifest(models_dir(directory).resolve())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_bytes(manifest: Manifest, name: str) -> tuple[ModelEntry, bytes]:
    """Read a model and check its sha256 against the manifest; return the checked bytes.

    The interpreter is built from these bytes, so the file cannot change between the check
    and the load.
    """
    entry = manifest.entry(name)
    path = manifest.directory / entry.file
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelError(
            f"model file {path} cannot be read: {err.strerror}",
            hint="reinstall the models (`zeke models rollback` or reinstall zeke)",
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise ModelError(
            f"model file {path} failed its sha256 check: expected {entry.sha256}, got {actual}",
            hint="the file is corrupt or was changed; reinstall the models bundle",
        )
    return entry, data


def verify_all(directory: str | os.PathLike | None = None) -> list[tuple[str, bool, str]]:
    """Check every model of the manifest: (name, ok, message) per model."""
    manifest = load_manifest(directory)
    results = []
    for name in manifest.models:
        try:
            verified_bytes(manifest, name)
        except ModelError as err:
            results.append((name, False, err.message))
        else:
            results.append((name, True, "sha256 ok"))
    return results
