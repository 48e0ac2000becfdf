"""Unpack a verified bundle into a fresh directory, re-checking every byte as it is written.

Only a ``VerifiedBundle`` is unpacked, from the same open file it was verified from; each file
is hashed again while it is copied (so a file changed in between is caught), written with
``O_EXCL | O_NOFOLLOW`` under names the manifest validated, and fsynced with its directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from zeke.bundles.archive import read_at
from zeke.bundles.errors import BundleError
from zeke.bundles.manifest import MANIFEST_MEMBER, SIGNATURE_MEMBER, show
from zeke.bundles.verify import VerifiedBundle
from zeke.fsutil import fsync_dir

_CHUNK = 1 << 20
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _write_file(path: Path, chunks, expected_sha256: str | None) -> None:
    digest = hashlib.sha256()
    fd = os.open(path, _FLAGS, 0o644)
    try:
        for chunk in chunks:
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        raise BundleError(
            f"bundle member {show(path.name)} changed between verification and unpacking",
            hint="something is writing to the bundle file; copy it somewhere safe and retry",
        )


def _member_chunks(fd: int, offset: int, size: int):
    end = offset + size
    while offset < end:
        chunk = read_at(fd, offset, min(_CHUNK, end - offset))
        offset += len(chunk)
        yield chunk


def unpack(
    stream: BinaryIO,
    bundle: VerifiedBundle,
    destination: Path,
    after_first_file: Callable[[], None] | None = None,
) -> None:
    """Write the bundle's files, manifest and signature into the empty ``destination``."""
    fd = stream.fileno()
    made = {destination}
    for index, entry in enumerate(bundle.manifest.files):
        member = bundle.members[entry.path]
        target = destination / entry.path
        for parent in reversed(target.relative_to(destination).parents[:-1]):
            directory = destination / parent
            if directory not in made:
                directory.mkdir(mode=0o755)
                made.add(directory)
        _write_file(target, _member_chunks(fd, member.data_offset, member.size), entry.sha256)
        if index == 0 and after_first_file is not None:
            after_first_file()
    _write_file(destination / MANIFEST_MEMBER, [bundle.manifest_bytes], None)
    _write_file(destination / SIGNATURE_MEMBER, [bundle.signature_bytes], None)
    for directory in sorted(made, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(directory)
