"""The bundle's container: a canonical ustar archive, written and read strictly.

Every byte of a bundle is either covered by the signature (the manifest), by a sha256 in the
manifest (the files) or fixed by this canonical layout (headers, padding, the end blocks). So
the reader compares each header with the one the writer would have made, and checks padding
and trailer bytes are zero: any change anywhere in the file is refused. Headers are parsed by
the standard ``tarfile`` module; members that are not regular files, or whose names are
absolute or climb out with ``..``, are refused before any of their data is read.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from zeke.bundles.errors import BundleError
from zeke.bundles.manifest import path_problem, show

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default blocking factor: archives end on a 10 KiB boundary
FIXED_MTIME = 0
FILE_MODE = 0o644
OWNER = b"root"
_COPY_CHUNK = 1 << 20


def padded(size: int) -> int:
    """Bytes a member's data takes in the archive (rounded up to whole blocks)."""
    return -(-size // BLOCK) * BLOCK


def archive_size(sizes: Iterable[int]) -> int:
    """The exact length of the canonical archive holding members of these sizes."""
    body = sum(BLOCK + padded(size) for size in sizes) + 2 * BLOCK
    return -(-body // RECORD) * RECORD


def ustar_header(name: str, size: int) -> bytes:
    """The one header block the bundle format allows for a regular file ``name``."""
    encoded = name.encode("ascii")
    if len(encoded) > 100:
        raise BundleError(f"member name {show(name)} is longer than 100 bytes")
    header = bytearray(BLOCK)

    def put(offset: int, value: bytes) -> None:
        header[offset : offset + len(value)] = value

    put(0, encoded)
    put(100, b"%07o\0" % FILE_MODE)
    put(108, b"0000000\0")  # uid
    put(116, b"0000000\0")  # gid
    put(124, b"%011o\0" % size)
    put(136, b"%011o\0" % FIXED_MTIME)
    put(148, b" " * 8)  # checksum is summed with its own field as spaces
    put(156, tarfile.REGTYPE)
    put(257, tarfile.POSIX_MAGIC)  # b"ustar\x0000"
    put(265, OWNER)
    put(297, OWNER)
    put(329, b"0000000\0")  # devmajor
    put(337, b"0000000\0")  # devminor
    put(148, b"%06o\0 " % sum(header))
    return bytes(header)


def write_archive(out: BinaryIO, members: Iterable[tuple[str, bytes | Path]]) -> int:
    """Write the canonical archive of ``members`` (name, bytes or file path); return its size."""
    written = 0
    for name, content in members:
        if isinstance(content, bytes):
            size = len(content)
            out.write(ustar_header(name, size))
            out.write(content)
        else:
            size = content.stat().st_size
            out.write(ustar_header(name, size))
            copied = 0
            with open(content, "rb") as source:
                while chunk := source.read(_COPY_CHUNK):
                    copied += len(chunk)
                    if copied > size:
                        break
                    out.write(chunk)
            if copied != size:
                raise BundleError(f"{content} changed size while it was being packed; pack again")
        out.write(b"\0" * (padded(size) - size))
        written += BLOCK + padded(size)
    end = -(-(written + 2 * BLOCK) // RECORD) * RECORD
    out.write(b"\0" * (end - written))
    return end


@dataclass(frozen=True)
class Member:
    """A regular-file member whose header passed every check; its data is not read yet."""

    name: str
    size: int
    header_offset: int
    data_offset: int

    @property
    def end(self) -> int:
        return self.data_offset + padded(self.size)


def _not_a_file(info: tarfile.TarInfo) -> str | None:
    if info.isreg():
        return None
    if info.issym():
        return f"a symbolic link (to {show(info.linkname)})"
    if info.islnk():
        return f"a hard link (to {show(info.linkname)})"
    if info.ischr() or info.isblk():
        return "a device node"
    if info.isfifo():
        return "a FIFO"
    if info.isdir():
        return "a directory"
    return f"a special entry (type {info.type!r})"


def read_at(fd: int, offset: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``offset`` (pread: the shared file position is not moved)."""
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise BundleError(
            f"bundle is truncated: it ends before byte {offset + size}",
            hint="the download or copy was cut short; get the bundle again",
        )
    return data


def check_zero(fd: int, start: int, end: int, what: str) -> None:
    """Refuse if any byte in [start, end) is not zero (padding and the end of the archive)."""
    offset = start
    while offset < end:
        chunk = read_at(fd, offset, min(_COPY_CHUNK, end - offset))
        if chunk.count(0) != len(chunk):
            bad = offset + next(i for i, b in enumerate(chunk) if b)
            raise BundleError(
                f"bundle is corrupt: byte {bad} in {what} is not zero",
                hint="the file was altered after packing; get the bundle again",
            )
        offset += len(chunk)


def scan_members(stream: BinaryIO, file_size: int) -> Iterator[Member]:
    """Yield each member in order, refusing anything but canonical regular-file members."""
    fd = stream.fileno()
    try:
        tar = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - the caller owns stream
    except Exception as err:  # untrusted input: any parser failure means "not a bundle"
        raise BundleError(
            f"not a model bundle: it is not a readable tar archive ({err})",
            hint="pass a bundle made by `zeke models pack`",
        ) from None
    expected = 0
    while True:
        try:
            info = tar.next()
        except Exception as err:  # untrusted input: any parser failure means corrupt
            raise BundleError(
                f"bundle is corrupt: unreadable tar header at byte {expected} ({err})",
                hint="get the bundle again",
            ) from None
        if info is None:
            return
        kind = _not_a_file(info)
        if kind:
            raise BundleError(
                f"bundle member {show(info.name)} is {kind}; bundles hold regular files only",
                hint="do not install this bundle; it was not made by `zeke models pack`",
            )
        problem = path_problem(info.name)
        if problem:
            raise BundleError(
                f"bundle member {show(info.name)} {problem}; refusing the bundle",
                hint="do not install this bundle; it was not made by `zeke models pack`",
            )
        if info.offset != expected or read_at(fd, info.offset, BLOCK) != ustar_header(
            info.name, info.size
        ):
            raise BundleError(
                f"bundle member {show(info.name)} has a non-canonical tar header at byte "
                f"{info.offset}",
                hint="the file was altered after packing, or not made by `zeke models pack`",
            )
        member = Member(info.name, info.size, info.offset, info.offset_data)
        if member.end > file_size:
            raise BundleError(
                f"bundle is truncated: member {show(info.name)} needs bytes up to "
                f"{member.end}, the file has {file_size}",
                hint="the download or copy was cut short; get the bundle again",
            )
        yield member
        expected = member.end
