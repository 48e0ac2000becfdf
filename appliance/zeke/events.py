"""The event record, the only thing that leaves the pixel-holding process.

An event says what was seen (track id, emotion, score, box, times) and never carries pixels,
crops or embeddings. The pipeline serves events as JSON lines on a local Unix stream socket;
every reader (the mesh forwarder, MQTT, a user's script) connects to it. Readers that cannot
keep up are dropped rather than slowing the pipeline down.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import resource
import socket
import stat
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zeke.errors import InputError, ZekeError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Event kinds: a track appeared, its smoothed emotion changed, a periodic update, it left.
KINDS = ("enter", "change", "update", "leave")


@dataclass(frozen=True, slots=True)
class EmotionEvent:
    """What the pipeline saw about one face track at one moment. Never pixels."""

    seq: int
    kind: str
    track_id: int
    emotion: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    ts: float  # when the frame was captured: wall-clock seconds since the epoch
    dwell_s: float = 0.0
    frame_index: int = 0
    device: str = ""
    emotions: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["box"] = [round(v, 1) for v in self.box]
        doc["score"] = round(self.score, 4)
        doc["dwell_s"] = round(self.dwell_s, 3)
        doc["emotions"] = {k: round(v, 4) for k, v in self.emotions.items()}
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str | bytes) -> EmotionEvent:
        doc = json.loads(line)
        doc["box"] = tuple(float(v) for v in doc["box"])
        return cls(**doc)


def default_socket_path() -> Path:
    """Where the event socket lives: ``$ZEKE_EVENTS_SOCKET``, the runtime dir, or /run/zeke."""
    env = os.environ.get("ZEKE_EVENTS_SOCKET")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/zeke/events.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/zeke-{os.geteuid()}"
    return Path(runtime) / "zeke" / "events.sock"


class SocketPathTaken(InputError):
    """Something zeke did not create sits at the socket path, or a live process serves it."""


class SocketUnavailable(InputError):
    """The socket cannot be made at that path (permissions, length, a file for a directory)."""


#: Waits after a failed accept(): from the first to the longest, doubling in between.
ACCEPT_BACKOFF_S = (0.1, 2.0)
#: An episode of failed accepts ends after this long without a failure.
QUIET_S = 5.0
#: How often the accept loop wakes while idle (to reap readers that hung up).
TICK_S = 1.0
#: How long a probe of an existing socket may wait for its listener to answer.
PROBE_TIMEOUT_S = 1.0
#: How long to wait for another zeke process claiming a socket in the same directory.
CLAIM_LOCK_S = 5.0

_log = logging.getLogger(__name__)


class EventServer:
    """Serves events as JSON lines to every connected local reader.

    ``publish`` never blocks the pipeline: each reader has a bounded send buffer and a reader
    that falls too far behind is disconnected (and counted).

    With ``backlog`` > 0, events published while no reader is connected are kept (the newest
    ``backlog`` of them) and handed to the next reader before anything new. At boot the
    pipeline and its readers start in parallel, and a reader restarts now and then: neither
    should cost the events of those seconds. Events beyond the bound are dropped and counted.

    The path is only ever taken over from a stale socket (nobody listening); a user's file,
    a directory, a link or a live socket is refused (``SocketPathTaken``). At close, only the
    socket this server bound is removed. When ``accept`` fails (out of file descriptors), the
    server waits and tries again, says so once per episode through ``warn``, and counts it.
    """

    def __init__(
        self,
        path: Path,
        max_pending_bytes: int = 256 * 1024,
        backlog: int = 0,
        warn: Callable[[str], None] | None = None,
    ):
        self.path = Path(path)
        self.max_pending_bytes = max_pending_bytes
        self.dropped_readers = 0
        self.dropped_backlog = 0
        #: accept() calls that failed, and the episodes of running out of descriptors
        self.accept_failures = 0
        self.out_of_descriptors = 0
        self.warn = warn or _log.warning
        self._backlog: deque[bytes] | None = deque(maxlen=backlog) if backlog > 0 else None
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._wake = threading.Event()
        self._bound: tuple[int, int] | None = None  # st_dev, st_ino of the socket we made
        self._stalled_since: float | None = None  # the episode of failed accepts, if any
        self._last_failure = 0.0
        self._failures_before = 0

    # -- claiming the path -------------------------------------------------------------------

    def start(self) -> EventServer:
        path = self.path
        if "\0" in str(path):
            raise SocketUnavailable(
                f"event socket path {_shown(path)} contains a NUL byte",
                hint="give a plain path with --events-socket PATH or [events] socket",
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            why = "a file is in the way" if isinstance(err, FileExistsError) else err.strerror
            raise SocketUnavailable(
                f"event socket {_shown(path)}: cannot create its directory {_shown(path.parent)} "
                f"({why or err})",
                hint="choose a directory you can write to with --events-socket PATH",
            ) from None
        with _claim_lock(path.parent):
            _clear_stale(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(path))
                st = os.lstat(path)
                self._bound = (st.st_dev, st.st_ino)
                os.chmod(path, 0o660)
                sock.listen(8)  # before the lock is let go: a prober now sees it live
            except OSError as err:
                sock.close()
                if self._bound is not None:  # bound but not listening: leave nothing behind
                    _remove_if_ours(path, self._bound)
                    self._bound = None
                if err.errno == errno.EADDRINUSE:
                    raise SocketPathTaken(
                        f"event socket path {_shown(path)} was taken by another process meanwhile",
                        hint="give this pipeline its own path with --events-socket PATH",
                    ) from None
                raise SocketUnavailable(
                    f"event socket {_shown(path)} cannot be created ({err.strerror or err})",
                    hint="choose a shorter path in a directory you can write to "
                    "(--events-socket PATH)",
                ) from None
        sock.settimeout(TICK_S)  # the accept loop wakes now and then to reap and end episodes
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="zeke-events", daemon=True)
        self._thread.start()
        return self

    # -- serving -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        delay = 0.0
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                self._tick()
                continue
            except OSError as err:
                if self._closing:
                    return
                if err.errno == errno.ECONNABORTED:
                    continue
                delay = min(ACCEPT_BACKOFF_S[1], max(ACCEPT_BACKOFF_S[0], delay * 2))
                self._accept_failed(err)
                self._reap()  # readers that hung up free their descriptors now
                self._wake.wait(delay)
                continue
            delay = 0.0
            try:
                self._admit(conn)
            except OSError:
                conn.close()
            self._tick()

    def _accept_failed(self, err: OSError) -> None:
        """Count a failed accept; say it once per episode, not once per failure."""
        self.accept_failures += 1
        now = time.monotonic()
        self._last_failure = now
        if self._stalled_since is not None:
            return
        self._stalled_since = now
        self._failures_before = self.accept_failures - 1
        if err.errno in (errno.EMFILE, errno.ENFILE):
            self.out_of_descriptors += 1
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            self.warn(
                f"event socket {_shown(self.path)}: out of file descriptors ({err.strerror}, "
                f"open files limit {soft}); new readers wait until some are free"
            )
        else:
            self.warn(
                f"event socket {_shown(self.path)}: cannot accept readers "
                f"({err.strerror or err}); retrying"
            )

    def _tick(self) -> None:
        """Reap readers that hung up; end an episode after a quiet spell without failures."""
        self._reap()
        since = self._stalled_since
        if since is None or time.monotonic() - self._last_failure < QUIET_S:
            return
        self._stalled_since = None
        failed = self.accept_failures - self._failures_before
        self.warn(
            f"event socket {_shown(self.path)}: accepting readers again "
            f"({failed} accepts failed over {self._last_failure - since:.1f} s)"
        )

    def _reap(self) -> None:
        with self._lock:
            alive = []
            for conn in self._clients:
                if _hung_up(conn):
                    conn.close()
                else:
                    alive.append(conn)
            self._clients = alive

    @property
    def stalled(self) -> bool:
        """True during an episode of failed accepts (out of descriptors)."""
        return self._stalled_since is not None

    def _admit(self, conn: socket.socket) -> None:
        if _hung_up(conn):  # a probe (or a reader gone already): it must not take the backlog
            conn.close()
            return
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.max_pending_bytes)
        with self._lock:
            if not self._hand_over_backlog(conn):
                return
            conn.setblocking(False)
            self._clients.append(conn)

    def _hand_over_backlog(self, conn: socket.socket) -> bool:
        """Send what was kept while nobody listened; False (and closed) if the reader stalls."""
        if not self._backlog:
            return True
        conn.settimeout(2.0)
        try:
            conn.sendall(b"".join(self._backlog))
        except OSError:
            conn.close()
            return False
        self._backlog.clear()
        return True

    @property
    def reader_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def stats(self) -> dict[str, int]:
        """Counters for ``zeke watch --summary``."""
        return {
            "readers": self.reader_count,
            "dropped_readers": self.dropped_readers,
            "dropped_backlog": self.dropped_backlog,
            "accept_failures": self.accept_failures,
            "out_of_descriptors": self.out_of_descriptors,
        }

    def publish(self, event: EmotionEvent) -> None:
        data = (event.to_json() + "\n").encode()
        with self._lock:
            if not self._clients and self._backlog is not None:
                if len(self._backlog) == self._backlog.maxlen:
                    self.dropped_backlog += 1
                self._backlog.append(data)
                return
            alive = []
            for conn in self._clients:
                try:
                    sent = conn.send(data)
                    if sent != len(data):
                        raise BlockingIOError
                    alive.append(conn)
                except (BlockingIOError, OSError):
                    self.dropped_readers += 1
                    conn.close()
            self._clients = alive

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with self._lock:
            for conn in self._clients:
                conn.close()
            self._clients = []
        if self._bound is not None:
            with contextlib.suppress(ZekeError), _claim_lock(self.path.parent):
                _remove_if_ours(self.path, self._bound)
            self._bound = None

    def __enter__(self) -> EventServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shown(path: Path) -> str:
    """The path as typed, unless it holds characters that would break the one-line message."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


def _clear_stale(path: Path) -> None:
    """Remove a stale socket at ``path``; refuse anything else that sits there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise SocketUnavailable(
            f"event socket {_shown(path)} cannot be used ({err.strerror or err})",
            hint="choose a shorter path in a directory you can write to (--events-socket PATH)",
        ) from None
    mode = st.st_mode
    elsewhere = "choose another path with --events-socket PATH or [events] socket"
    if not stat.S_ISSOCK(mode):
        kind = _kind(mode, st.st_size)
        raise SocketPathTaken(
            f"event socket path {_shown(path)} is {kind}; zeke only replaces a stale socket",
            hint=f"move it away if it is not needed, or {elsewhere}",
        )
    owner = _probe(path)
    if owner is not None:
        raise SocketPathTaken(
            f"event socket {_shown(path)} is already served by {owner}",
            hint="stop that process first, or give this pipeline its own path "
            "(--events-socket PATH or [events] socket), or run it with --no-events-socket",
        )
    _remove_if_ours(path, (st.st_dev, st.st_ino))


def _kind(mode: int, size: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return f"a regular file ({size} bytes)"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _probe(path: Path) -> str | None:
    """Who listens on the socket at ``path``: None when nobody does (it is stale)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT_S)
    try:
        probe.connect(str(path))
        pid = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    except ConnectionRefusedError:
        return None
    except (TimeoutError, BlockingIOError):  # listening, but its accept queue is full
        pid = _listener_pid(path)
    except PermissionError:
        return "a process of another user (the socket cannot be opened to tell which)"
    except OSError as err:
        return f"an unknown process ({err.strerror or err})"
    finally:
        probe.close()
    return _describe_process(pid)


def _listener_pid(path: Path) -> int:
    """The pid listening on ``path``, from /proc/net/unix and the processes' descriptors."""
    inodes = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split(None, 7)
            if len(fields) == 8 and fields[7] in (str(path), os.path.abspath(path)):
                inodes.add(f"socket:[{fields[6]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return 0


def _describe_process(pid: int) -> str:
    """``pid 123 (python3: python -m zeke watch ...)``: enough to find and stop it."""
    if pid <= 0:
        return "a process this one cannot see (another PID namespace)"
    name = cmdline = ""
    with contextlib.suppress(OSError):
        name = Path(f"/proc/{pid}/comm").read_text(errors="replace").strip()
    with contextlib.suppress(OSError):
        cmdline = (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()[:400]
            .replace(b"\0", b" ")
            .decode(errors="replace")
        )
    text = ": ".join(part for part in (name, cmdline.strip()) if part)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    if len(text) > 120:
        text = text[:117] + "..."
    return f"pid {pid} ({text})" if text else f"pid {pid}"


def _remove_if_ours(path: Path, identity: tuple[int, int]) -> None:
    """Unlink ``path`` only if it is still the socket ``identity`` names (st_dev, st_ino)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == identity:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _hung_up(conn: socket.socket) -> bool:
    """True if the peer already closed (a probe that only asked who listens)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextlib.contextmanager
def _claim_lock(directory: Path) -> Iterator[None]:
    """Serialize zeke processes probing, replacing and removing sockets in one directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield  # an unreadable directory: nothing to lock with, go on without
        return
    try:
        deadline = time.monotonic() + CLAIM_LOCK_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SocketUnavailable(
                        f"event socket directory {_shown(directory)} stays locked by another "
                        "process",
                        hint="wait for the other zeke process to start, then try again",
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def read_events(path: Path, timeout: float | None = None) -> Iterator[EmotionEvent]:
    """Connect to the event socket and yield events until it closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    with sock, sock.makefile("rb") as stream:
        for line in stream:
            if line.strip():
                yield EmotionEvent.from_json(line)
