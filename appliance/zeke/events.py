"""The event record, the only thing that leaves the pixel-holding process.

An event says what was seen (track id, emotion, score, box, times) and never carries pixels,
crops or embeddings. The pipeline serves events as JSON lines on a local Unix stream socket;
every reader (the mesh forwarder, MQTT, a user's script) connects to it. Readers that cannot
keep up are dropped rather than slowing the pipeline down.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


class EventServer:
    """Serves events as JSON lines to every connected local reader.

    ``publish`` never blocks the pipeline: each reader has a bounded send buffer and a reader
    that falls too far behind is disconnected (and counted).

    With ``backlog`` > 0, events published while no reader is connected are kept (the newest
    ``backlog`` of them) and handed to the next reader before anything new. At boot the
    pipeline and its readers start in parallel, and a reader restarts now and then: neither
    should cost the events of those seconds. Events beyond the bound are dropped and counted.
    """

    def __init__(self, path: Path, max_pending_bytes: int = 256 * 1024, backlog: int = 0):
        self.path = Path(path)
        self.max_pending_bytes = max_pending_bytes
        self.dropped_readers = 0
        self.dropped_backlog = 0
        self._backlog: deque[bytes] | None = deque(maxlen=backlog) if backlog > 0 else None
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> EventServer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        sock.listen(8)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="zeke-events", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.max_pending_bytes)
            with self._lock:
                if not self._hand_over_backlog(conn):
                    continue
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
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with self._lock:
            for conn in self._clients:
                conn.close()
            self._clients = []
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> EventServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: Path, timeout: float | None = None) -> Iterator[EmotionEvent]:
    """Connect to the event socket and yield events until it closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    with sock, sock.makefile("rb") as stream:
        for line in stream:
            if line.strip():
                yield EmotionEvent.from_json(line)
