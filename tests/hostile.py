"""Run a real ``zeke`` child on hostile input and judge how it ended.

The adversarial suites use one yardstick: a refusal ends within the deadline, with a non-zero
exit, an ``error:`` line on stderr and no Python traceback; and the child's peak memory is read
from the kernel (``os.wait4``) rather than trusted from the exit code.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: No hostile input may keep a command busy longer than this.
DEADLINE_S = 30.0


@dataclass(frozen=True)
class Ended:
    """How one child ended."""

    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the deadline
    stdout: str
    stderr: str
    peak_rss_mb: float
    seconds: float

    @property
    def hung(self) -> bool:
        return self.returncode is None

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr + self.stdout

    def describe(self) -> str:
        tail = (self.stderr or self.stdout).strip().splitlines()[-6:]
        return f"{' '.join(self.argv[2:])!r} -> rc={self.returncode}: " + " | ".join(tail)


def run_child(
    argv: list[str] | tuple[str, ...],
    *,
    deadline: float = DEADLINE_S,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: bytes | None = None,
    memory_limit_mb: int | None = None,
) -> Ended:
    """Run ``argv`` to its end or to the deadline; report exit, output and peak RSS."""
    import resource
    import tempfile

    def limit() -> None:
        os.setsid()
        if memory_limit_mb:
            size = memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=full_env,
            cwd=cwd,
            preexec_fn=limit,
        )
        if stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        returncode: int | None = None
        rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - start > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = returncode if returncode is not None else -9
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Ended(
            argv=tuple(str(a) for a in argv),
            returncode=returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            peak_rss_mb=(rusage.ru_maxrss / 1024.0) if rusage else 0.0,
            seconds=seconds,
        )


def zeke(*args: str | os.PathLike[str], **kw) -> Ended:  # type: ignore[no-untyped-def]
    """Run ``python -m zeke ARGS...`` as :func:`run_child`."""
    return run_child([sys.executable, "-m", "zeke", *map(str, args)], **kw)


def refused(ended: Ended) -> bool:
    """A clean refusal: ended in time, non-zero, an ``error:`` line and no traceback."""
    return (
        not ended.hung
        and ended.returncode not in (0, None)
        and not ended.traceback
        and "error:" in ended.stderr
    )


def tree_state(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root``: its kind and, for files, a digest (to prove nothing changed)."""
    state: dict[str, tuple[str, str]] = {}
    for path in sorted([root, *root.rglob("*")]):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_file():
            state[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        elif path.is_dir():
            state[rel] = ("dir", "")
        else:
            state[rel] = ("special", oct(path.lstat().st_mode))
    return state


def tree_fingerprint(root: Path, hash_limit: int = 16 << 20) -> dict[str, tuple]:
    """Like :func:`tree_state`, but files past ``hash_limit`` bytes (say a sparse terabyte) are
    known by size, inode and mtime instead of being read whole."""
    state: dict[str, tuple] = {}
    for path in sorted([root, *root.rglob("*")]):
        rel = str(path.relative_to(root))
        info = path.lstat()
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_file() and info.st_size > hash_limit:
            state[rel] = ("file", info.st_size, info.st_ino, info.st_mtime_ns)
        elif path.is_file():
            state[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        elif path.is_dir():
            state[rel] = ("dir", "")
        else:
            state[rel] = ("special", oct(info.st_mode))
    return state
