"""Verify a bundle file, or an installed bundle directory, without writing anything.

Order matters: the manifest and its signature come first and are checked before any file's
data is read, then each file is hashed as it streams past and compared with the manifest;
every byte outside the files is checked against the canonical layout. Nothing is unpacked:
``unpack`` runs only on a bundle this module returned.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from zeke import __version__
from zeke.bundles.archive import (
    BLOCK,
    Member,
    archive_size,
    check_zero,
    read_at,
    scan_members,
)
from zeke.bundles.errors import BundleError
from zeke.bundles.keys import TrustedKeys, verify_signature
from zeke.bundles.manifest import (
    MANIFEST_MEMBER,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    MAX_TOTAL_BYTES,
    MODELS_MANIFEST,
    SIGNATURE_MEMBER,
    BundleManifest,
    ModelSpec,
    parse_manifest,
    show,
    version_at_least,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_HASH_CHUNK = 1 << 20
_REINSTALL = "the installed copy was damaged; roll back or install the bundle again"
MAX_BUNDLE_BYTES = MAX_TOTAL_BYTES + (1 << 24)


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature, hashes and layout all checked out."""

    path: Path
    manifest: BundleManifest
    manifest_bytes: bytes
    signature_bytes: bytes
    key_id: str
    members: dict[str, Member]
    size: int

    @property
    def identity(self) -> str:
        """The sha256 of the signed manifest: equal identities mean equal bundles."""
        return hashlib.sha256(self.manifest_bytes).hexdigest()


def _refuse_version(manifest: BundleManifest, zeke_version: str) -> None:
    if not version_at_least(zeke_version, manifest.min_zeke_version):
        raise BundleError(
            f"bundle {manifest.name} {manifest.version} needs zeke >= "
            f"{manifest.min_zeke_version}, this is zeke {zeke_version}",
            hint="upgrade zeke first, then install the bundle",
        )


def models_consistent(manifest: BundleManifest, toml_bytes: bytes) -> None:
    """The carried manifest.toml must describe exactly the models the signed manifest lists."""
    try:
        document = tomllib.loads(toml_bytes.decode("utf-8"))
        carried = {
            name: ModelSpec.model_validate(entry).model_dump(mode="json")
            for name, entry in document.get("models", {}).items()
        }
    except Exception as err:  # signed, but still checked: any failure is a refusal
        raise BundleError(
            f"{MODELS_MANIFEST} in the bundle cannot be read: {err}",
            hint="re-pack the bundle with `zeke models pack`",
        ) from None
    signed = {name: spec.model_dump(mode="json") for name, spec in manifest.models.items()}
    if carried != signed:
        differ = sorted(set(carried) ^ set(signed)) or sorted(
            n for n in signed if carried.get(n) != signed[n]
        )
        raise BundleError(
            f"{MODELS_MANIFEST} in the bundle disagrees with {MANIFEST_MEMBER} "
            f"(models: {', '.join(differ)})",
            hint="re-pack the bundle with `zeke models pack`",
        )


def _read_small(fd: int, member: Member, limit: int) -> bytes:
    if member.size > limit:
        raise BundleError(
            f"bundle member {show(member.name)} is larger than {limit} bytes",
            hint="this is not a bundle made by `zeke models pack`; do not install it",
        )
    data = read_at(fd, member.data_offset, member.size)
    check_zero(fd, member.data_offset + member.size, member.end, f"the padding of {member.name}")
    return data


def _hash_member(fd: int, member: Member) -> str:
    digest = hashlib.sha256()
    offset, end = member.data_offset, member.data_offset + member.size
    while offset < end:
        chunk = read_at(fd, offset, min(_HASH_CHUNK, end - offset))
        digest.update(chunk)
        offset += len(chunk)
    check_zero(fd, end, member.end, f"the padding of {member.name}")
    return digest.hexdigest()


def verify_stream(
    stream: BinaryIO,
    path: Path,
    trusted: TrustedKeys | None = None,
    zeke_version: str = __version__,
) -> VerifiedBundle:
    """Verify an open bundle file (the caller keeps it open to unpack the same bytes)."""
    trusted = trusted if trusted is not None else TrustedKeys.load()
    fd = stream.fileno()
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{path} is not a regular file", hint="pass a bundle file")
    size = info.st_size
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"{path} is {size} bytes, larger than any bundle may be",
            hint="this is not a model bundle; do not install it",
        )
    if size < 3 * BLOCK:
        raise BundleError(
            f"{path} is {size} bytes: too short to be a model bundle (truncated?)",
            hint="get the bundle again",
        )
    members = scan_members(stream, size)
    head = [next(members, None), next(members, None)]
    names = [m.name if m else None for m in head]
    if names != [MANIFEST_MEMBER, SIGNATURE_MEMBER]:
        raise BundleError(
            f"not a model bundle: it must start with {MANIFEST_MEMBER} and {SIGNATURE_MEMBER}, "
            f"found {', '.join(show(n) for n in names if n) or 'no members'}",
            hint="pass a bundle made by `zeke models pack`",
        )
    manifest_member, signature_member = head
    manifest_data = _read_small(fd, manifest_member, MAX_MANIFEST_BYTES)
    signature_data = _read_small(fd, signature_member, MAX_SIGNATURE_BYTES)
    if not trusted.keys:
        raise BundleError(
            f"no trusted keys in {trusted.directory}: no bundle can be verified",
            hint=f"put the publisher's public key (.pub) in {trusted.directory}/",
        )
    ident = verify_signature(signature_data, manifest_data, trusted)
    manifest = parse_manifest(manifest_data)
    _refuse_version(manifest, zeke_version)

    found: dict[str, Member] = {m.name: m for m in head}
    expected = iter(manifest.files)
    models_toml = b""
    for member in members:
        entry = next(expected, None)
        if member.name in found:
            raise BundleError(
                f"bundle member {show(member.name)} appears twice",
                hint="do not install this bundle; it was altered after signing",
            )
        if entry is None or entry.path != member.name:
            listed = any(f.path == member.name for f in manifest.files)
            if not listed:
                raise BundleError(
                    f"bundle holds an extra member {show(member.name)} that its manifest does "
                    "not list",
                    hint="do not install this bundle; it was altered after signing",
                )
            raise BundleError(
                f"bundle lacks member {show(entry.path if entry else '')} where its manifest "
                f"puts it (found {show(member.name)}): members are missing or out of order",
                hint="the bundle is incomplete or was altered after signing; get it again",
            )
        if member.size != entry.size:
            raise BundleError(
                f"bundle member {show(member.name)} is {member.size} bytes, its manifest says "
                f"{entry.size}",
                hint="the bundle was altered after signing; get it again",
            )
        if member.name == MODELS_MANIFEST:
            models_toml = _read_small(fd, member, MAX_MANIFEST_BYTES)
            actual = hashlib.sha256(models_toml).hexdigest()
        else:
            actual = _hash_member(fd, member)
        if actual != entry.sha256:
            raise BundleError(
                f"bundle member {show(member.name)} failed its sha256 check "
                f"(expected {entry.sha256[:16]}…, got {actual[:16]}…)",
                hint="the file is corrupt or was changed after signing; get the bundle again",
            )
        found[member.name] = member
    expected_size = archive_size(
        [manifest_member.size, signature_member.size, *(f.size for f in manifest.files)]
    )
    truncated = (
        f"bundle is truncated: {size} of {expected_size} bytes" if size < expected_size else None
    )
    missing = [f.path for f in manifest.files if f.path not in found]
    if missing:
        raise BundleError(
            (f"{truncated}; " if truncated else "")
            + f"bundle lacks {len(missing)} member(s) its manifest lists: "
            + ", ".join(show(m) for m in missing),
            hint="the bundle is incomplete (a cut-short download or copy?); get it again",
        )
    if truncated:
        raise BundleError(truncated, hint="the download or copy was cut short; get it again")
    if size > expected_size:
        raise BundleError(
            f"bundle has {size - expected_size} bytes of unexpected data past its end",
            hint="the file was altered after packing; get the bundle again",
        )
    last_end = max(m.end for m in found.values())
    check_zero(fd, last_end, size, "the end of the archive")
    models_consistent(manifest, models_toml)
    return VerifiedBundle(
        path=path,
        manifest=manifest,
        manifest_bytes=manifest_data,
        signature_bytes=signature_data,
        key_id=ident,
        members=found,
        size=size,
    )


def open_bundle(path: str | os.PathLike) -> BinaryIO:
    """Open a bundle file for verifying and unpacking: a regular file, or a named refusal.

    A FIFO, a device or a socket is refused before it is opened for reading (it would block
    or never end), and so is a file larger than any bundle may be.
    """
    from zeke.inputs import open_regular

    fd, _ = open_regular(
        path,
        "bundle file",
        max_bytes=MAX_BUNDLE_BYTES,
        error=BundleError,
        hint="pass a bundle made by `zeke models pack`",
        missing="bundle {} does not exist",
    )
    return os.fdopen(fd, "rb")


def verify_bundle(
    path: str | os.PathLike,
    trusted: TrustedKeys | None = None,
    zeke_version: str = __version__,
) -> VerifiedBundle:
    """Verify a bundle file on disk (signature, every hash, canonical layout, zeke version)."""
    with open_bundle(path) as stream:
        return verify_stream(stream, Path(path), trusted, zeke_version)


@dataclass(frozen=True)
class InstalledBundle:
    """An installed bundle directory whose signature and files all checked out."""

    directory: Path
    manifest: BundleManifest
    key_id: str
    identity: str


def verify_installed(
    directory: Path,
    trusted: TrustedKeys | None = None,
    zeke_version: str = __version__,
) -> InstalledBundle:
    """Check an unpacked bundle: signature, every file's size and hash, nothing extra."""
    trusted = trusted if trusted is not None else TrustedKeys.load()
    try:
        manifest_data = (directory / MANIFEST_MEMBER).read_bytes()
        signature_data = (directory / SIGNATURE_MEMBER).read_bytes()
    except OSError as err:
        raise BundleError(
            f"installed bundle {directory} is incomplete: {err.strerror} ({err.filename})"
        ) from None
    ident = verify_signature(signature_data, manifest_data, trusted)
    manifest = parse_manifest(manifest_data)
    _refuse_version(manifest, zeke_version)
    listed = {f.path for f in manifest.files} | {MANIFEST_MEMBER, SIGNATURE_MEMBER}
    for root, dirs, files in os.walk(directory):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, name), directory)
            if rel not in listed:
                raise BundleError(
                    f"installed bundle {directory} holds an extra file {show(rel)}", hint=_REINSTALL
                )
    for entry in manifest.files:
        path = directory / entry.path
        try:
            info = os.lstat(path)
        except OSError:
            raise BundleError(
                f"installed bundle {directory} lacks {show(entry.path)}", hint=_REINSTALL
            ) from None
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
            raise BundleError(
                f"installed file {path} is not the {entry.size}-byte regular file it should be"
            )
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != entry.sha256:
            raise BundleError(f"installed file {path} failed its sha256 check", hint=_REINSTALL)
    return InstalledBundle(directory, manifest, ident, hashlib.sha256(manifest_data).hexdigest())


__all__ = [
    "InstalledBundle",
    "VerifiedBundle",
    "models_consistent",
    "open_bundle",
    "verify_bundle",
    "verify_installed",
    "verify_stream",
]
