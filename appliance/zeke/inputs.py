"""Opening a file a user named, safely, in one place.

Photos, firmware and bundles all come from paths a user (or an attacker) picked, so each one
is checked *before* a byte is read: it must be a regular file (a FIFO would block the open
forever, ``/dev/zero`` never ends, opening a serial port toggles its lines), no larger than
the caller's limit, and its name must fit the filesystem. The file is opened with
``O_NONBLOCK`` and checked again with ``fstat`` on the open descriptor, so a path swapped for
a FIFO between the check and the open cannot hang us either. Every refusal is the caller's
``ZekeError`` subclass with a one-line reason naming the path as it can be printed.
"""

from __future__ import annotations

import errno
import os
import stat

from zeke.errors import InputError, ZekeError

NAME_MAX = 255  # bytes in one path component (Linux, every common filesystem)
PATH_MAX = 4096

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def shown(path: str | os.PathLike | bytes) -> str:
    """``path`` as safe one-line text: undecodable bytes and control characters escaped."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif not char.isprintable():
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in a user's words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _name_problem(raw: bytes) -> str | None:
    if b"\0" in raw:
        return "has a NUL byte in its name"
    if len(raw) > PATH_MAX:
        return f"is a path of {len(raw)} bytes, longer than the system allows ({PATH_MAX})"
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"has a name of {longest} bytes, longer than the filesystem allows ({NAME_MAX})"
    return None


def open_regular(
    path: str | os.PathLike,
    what: str,
    *,
    max_bytes: int,
    error: type[ZekeError] = InputError,
    hint: str | None = None,
    missing: str = "{}: no such file",
) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only as a regular file of at most ``max_bytes``; (fd, fstat).

    ``what`` names the expected file ("image", "firmware file", "bundle") in the messages;
    ``missing`` is the message for a path that does not exist (``{}`` is the path). The
    caller owns the descriptor.
    """
    name = shown(path)
    raw = os.fsencode(path)
    problem = _name_problem(raw)
    if problem:
        raise error(f"{name[:120]}{'…' if len(name) > 120 else ''}: {problem}", hint="rename it")
    try:
        info = os.stat(raw)
    except OSError as err:
        raise _stat_error(path, name, what, err, error, missing) from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(name, what, info.st_mode, error, hint)
    _check_size(name, what, info.st_size, max_bytes, error)
    try:
        fd = os.open(raw, _OPEN_FLAGS)
    except OSError as err:
        raise _stat_error(path, name, what, err, error, missing) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped since the check above
            raise _not_regular(name, what, info.st_mode, error, hint)
        _check_size(name, what, info.st_size, max_bytes, error)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular(
    path: str | os.PathLike,
    what: str,
    *,
    max_bytes: int,
    error: type[ZekeError] = InputError,
    hint: str | None = None,
    missing: str = "{}: no such file",
) -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` (see ``open_regular``)."""
    fd, _ = open_regular(path, what, max_bytes=max_bytes, error=error, hint=hint, missing=missing)
    try:
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # grew while we read it
                _check_size(shown(path), what, total, max_bytes, error)
    except OSError as err:
        raise error(f"{shown(path)}: cannot be read ({err.strerror})") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _check_size(name: str, what: str, size: int, limit: int, error: type[ZekeError]) -> None:
    if size > limit:
        raise error(
            f"{name}: {size} bytes, larger than any {what} zeke reads ({limit} bytes)",
            hint=f"check that this is the {what} you meant",
        )


def _not_regular(
    name: str, what: str, mode: int, error: type[ZekeError], hint: str | None
) -> ZekeError:
    kind = kind_of(mode)
    if stat.S_ISDIR(mode):
        return error(f"{name}: is a directory, not a {what}", hint=hint or "pass a file in it")
    return error(
        f"{name}: is {kind}, not a regular file; refusing to read it",
        hint=hint or f"pass a {what} saved on disk",
    )


def _stat_error(
    path: str | os.PathLike,
    name: str,
    what: str,
    err: OSError,
    error: type[ZekeError],
    missing: str,
) -> ZekeError:
    if err.errno == errno.ENOENT:
        if os.path.islink(path):
            target = shown(os.readlink(path))
            return error(
                f"{name}: is a symbolic link to {target}, which does not exist",
                hint="fix or remove the link",
            )
        return error(missing.format(name), hint="check the path")
    if err.errno in (errno.EACCES, errno.EPERM):
        return error(f"{name}: permission denied", hint="check the file's permissions")
    if err.errno == errno.ELOOP:
        return error(f"{name}: too many levels of symbolic links", hint="fix the links")
    if err.errno == errno.ENOTDIR:
        return error(f"{name}: a part of the path is not a directory", hint="check the path")
    if err.errno == errno.ENAMETOOLONG:
        return error(f"{name[:120]}…: the name is too long for the filesystem", hint="rename it")
    return error(f"{name}: cannot open the {what} ({err.strerror})")
