"""Durable file operations: what is written survives a power cut, or is not there at all.

Every switch is a rename (atomic on POSIX); each rename is followed by an fsync of the
directory that holds it, so the new name is on disk before the caller moves on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new content, never a mix.

    ``owner`` (uid, gid) is set before the rename, so the file never appears with another.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_symlink(
    target: str, link: Path, before_replace: Callable[[], None] | None = None
) -> None:
    """Point ``link`` at ``target`` in one rename; the old link stays valid until then."""
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    if before_replace is not None:
        before_replace()
    os.replace(tmp, link)
    fsync_dir(link.parent)


def tree_size(directory: Path) -> int:
    """Bytes the regular files under ``directory`` occupy on disk (allocated blocks)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


# -- read-modify-write of a user's file (the config) -----------------------------------------

#: Temp files this module writes: ``.<name>.zeke-<pid>-<8 hex>.tmp``. Only names of this form
#: (and, for files older zeke versions wrote, ``.<name>.<8 of mkstemp's letters>.tmp``) are
#: ever removed as stale, and only when they are regular files.
_OWN_TEMP = r"\.{name}\.zeke-[0-9]+-[0-9a-f]{{8}}\.tmp"
_LEGACY_TEMP = r"\.{name}\.[a-z0-9_]{{8}}\.tmp"


def write_temp(
    directory: Path, name: str, data: bytes, mode: int, owner: tuple[int, int] | None = None
) -> Path:
    """A new temp file for ``name`` in ``directory``, written and flushed, not yet renamed.

    Created exclusively and without following links, so a name planted there in advance
    (a link, a FIFO) makes this fail instead of writing through it.
    """
    tmp = directory / f".{name}.zeke-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    return tmp


def is_own_temp(entry: str, name: str) -> bool:
    """Whether ``entry`` is a temp file name :func:`write_temp` (or an older zeke) uses for
    ``name``."""
    escaped = re.escape(name)
    return any(
        re.fullmatch(pattern.format(name=escaped), entry) for pattern in (_OWN_TEMP, _LEGACY_TEMP)
    )


def remove_stale_temps(path: Path, names: tuple[str, ...] = ()) -> list[str]:
    """Remove the temp files a killed write of ``path`` (or of ``names`` beside it) left.

    Call it holding :func:`locked` for ``path``: every writer holds that lock, so no live
    write owns any of these. Links and anything but regular files are left alone, and so
    are files of other users (unless we are root).
    """
    wanted = (path.name, *names)
    removed = []
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return removed
    for entry in entries:
        if not any(is_own_temp(entry, name) for name in wanted):
            continue
        candidate = path.parent / entry
        try:
            info = candidate.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            if os.geteuid() not in (0, info.st_uid):
                continue
            candidate.unlink()
            removed.append(entry)
        except OSError:
            continue
    if removed:
        with contextlib.suppress(OSError):
            fsync_dir(path.parent)
    return removed


def lock_path(path: Path) -> Path:
    """The lock file that serialises writers of ``path``: ``.<name>.lock`` beside it."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: Path, wait: float = 10.0) -> Iterator[None]:
    """Hold the exclusive lock for read-modify-write of ``path`` (raises TimeoutError).

    The lock is a ``flock`` on a sibling file, not on ``path`` itself: every write replaces
    ``path`` by a rename, so a lock on it would be held on an inode that the next writer no
    longer opens. The sibling is never renamed or removed (removing it would let two
    writers lock two different files). It is opened read-only, so a lock file left by root
    still serves a user, and non-blocking, so a FIFO planted in its place cannot hang us.
    """
    lock = lock_path(path)
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(lock, flags, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{lock} is not a regular file")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{lock} is held by another writer") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
