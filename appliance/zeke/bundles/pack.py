"""Pack a models directory into a signed bundle, reproducibly.

The directory is a models directory as zeke reads it: ``manifest.toml`` plus the files it
names. Each file is checked against its manifest sha256 before it is packed, the archive is
canonical (fixed order, times, owners and modes) and Ed25519 signatures are deterministic, so
the same directory, version and key always give the same bytes. The written bundle is verified
with the signing key's public half before it is kept.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from zeke import __version__
from zeke.bundles.archive import write_archive
from zeke.bundles.errors import BundleError
from zeke.bundles.keys import TrustedKeys, key_id, load_private_key, sign
from zeke.bundles.manifest import (
    FORMAT,
    MANIFEST_MEMBER,
    MODELS_MANIFEST,
    SIGNATURE_MEMBER,
    BundleManifest,
    FileEntry,
    ModelSpec,
    manifest_bytes,
    path_problem,
    show,
)
from zeke.bundles.verify import verify_bundle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_NAME = "zeke-models"
NOTICE_FILES = ("NOTICE", "LICENSE")
BUNDLE_SUFFIX = ".bundle"
_WRITABLE = "choose a writable --out path with free space"


@dataclass(frozen=True)
class PackResult:
    path: Path
    manifest: BundleManifest
    key_id: str
    size: int
    sha256: str


def _file_entry(source: Path, rel: str) -> FileEntry:
    problem = path_problem(rel)
    if problem:
        raise BundleError(f"{MODELS_MANIFEST} names file {show(rel)}, which {problem}")
    path = source / rel
    try:
        info = os.stat(path)
    except OSError as err:
        raise BundleError(
            f"{path} is named in {MODELS_MANIFEST} but cannot be read: {err.strerror}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{path} is not a regular file")
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return FileEntry(path=rel, size=info.st_size, sha256=digest.hexdigest())


def _models(source: Path) -> dict[str, ModelSpec]:
    toml_path = source / MODELS_MANIFEST
    try:
        document = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{source} has no {MODELS_MANIFEST}",
            hint="pack a models directory: manifest.toml plus the model files it names",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise BundleError(f"cannot read {toml_path}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise BundleError(f"{toml_path} is not valid TOML: {err}") from None
    table = document.get("models")
    if not isinstance(table, dict) or not table:
        raise BundleError(f"{toml_path} lists no [models.<name>] tables")
    models: dict[str, ModelSpec] = {}
    for name, entry in table.items():
        try:
            models[name] = ModelSpec.model_validate(entry)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BundleError(f"{toml_path}: model {name}: {where}: {first['msg']}") from None
    return models


def default_version(files: list[FileEntry]) -> str:
    """A version derived from the content alone (12 hex digits), for reproducible packs."""
    digest = hashlib.sha256()
    for entry in files:
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()[:12]


def pack_directory(
    source: str | os.PathLike,
    key_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    version: str | None = None,
    version_prefix: str = "",
    name: str = DEFAULT_NAME,
    min_zeke_version: str | None = None,
) -> PackResult:
    """Write a signed bundle of the models directory ``source``; return what was written.

    Without ``version`` the version is ``version_prefix`` plus a digest of the content.
    """
    source = Path(source)
    if not source.is_dir():
        raise BundleError(f"{source} is not a directory", hint="pass a models directory")
    private_key = load_private_key(key_path)
    models = _models(source)
    paths = {MODELS_MANIFEST, *(spec.file for spec in models.values())}
    paths.update(n for n in NOTICE_FILES if (source / n).is_file())
    files = [_file_entry(source, rel) for rel in sorted(paths)]
    by_path = {f.path: f for f in files}
    for model, spec in models.items():
        actual = by_path[spec.file]
        if actual.sha256 != spec.sha256 or (spec.size is not None and actual.size != spec.size):
            raise BundleError(
                f"{source / spec.file} does not match {MODELS_MANIFEST} for model {model} "
                f"(sha256 {actual.sha256[:16]}…, {actual.size} bytes)",
                hint="fix the file or its entry in manifest.toml before packing",
            )
    try:
        manifest = BundleManifest(
            format=FORMAT,
            name=name,
            version=version or version_prefix + default_version(files),
            min_zeke_version=min_zeke_version or __version__,
            files=files,
            models=models,
        )
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise BundleError(f"cannot pack {source}: {where}: {first['msg']}") from None
    manifest_data = manifest_bytes(manifest)
    signature = sign(private_key, manifest_data)

    target = Path(out) if out else Path.cwd() / f"{name}-{manifest.version}{BUNDLE_SUFFIX}"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stream = open(tmp, "wb")  # noqa: SIM115 - closed by the with block below
    except OSError as err:
        raise BundleError(f"cannot write {target}: {err.strerror}", hint=_WRITABLE) from None
    try:
        with stream:
            size = write_archive(
                stream,
                [
                    (MANIFEST_MEMBER, manifest_data),
                    (SIGNATURE_MEMBER, signature),
                    *((f.path, source / f.path) for f in files),
                ],
            )
            stream.flush()
            os.fsync(stream.fileno())
        own = TrustedKeys(directory=Path(key_path).parent)
        own.keys[key_id(private_key.public_key())] = private_key.public_key()
        verify_bundle(tmp, own, zeke_version=manifest.min_zeke_version)
        os.replace(tmp, target)
    except OSError as err:
        raise BundleError(f"cannot write {target}: {err.strerror}", hint=_WRITABLE) from None
    finally:
        tmp.unlink(missing_ok=True)
    digest = hashlib.sha256()
    with open(target, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return PackResult(target, manifest, key_id(private_key.public_key()), size, digest.hexdigest())
