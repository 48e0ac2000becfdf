"""A zeke node MCU simulated on a pty: what ``firmware/node`` does, for tests and bench runs.

The gateway (or ``zeke mesh run --serial``) opens ``sim.path`` as its serial port; the
simulator sits on the other side of the pty and behaves like ``NodeLink`` in the C++ library:
it answers hellos with the last event it holds, takes a key on its (trusted) serial line,
shows only events with a valid tag and a new sequence number, and sends button commands.
Every raw line it receives is kept, so tests can check what really went over the wire.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import threading
import time
import tty
from dataclasses import dataclass, field

from zeke.mesh import protocol as p
from zeke.mesh.auth import new_nonce


@dataclass
class Received:
    """One line as it arrived on the serial line, with the time it was read."""

    raw: bytes
    at: float  # time.time()


@dataclass
class NodeState:
    """The node's protocol state, the Python twin of ``zeke::NodeLink``."""

    node_id: str
    key: bytes | None = None
    last_seq: int = 0
    command_seq: int = 0
    shown: p.Event | None = None
    counters: p.DropCounters = field(default_factory=p.DropCounters)

    def on_line(self, line: bytes, trusted: bool = True) -> tuple[str, bytes | p.Event | None]:
        """Returns ("reply", line) | ("show", event) | ("key", None) | ("none", None).

        Tagged lines reaching a node are the appliance's events, so they must verify as its.
        """
        try:
            parsed = p.parse(line) if self.key is None else p.check(line, self.key, p.APP)
            if parsed.tag is not None and self.key is None:
                raise p.LineError(p.Drop.TAG, "no key to check it with")
            if isinstance(parsed.message, p.KeyProvision) and not trusted:
                raise p.LineError(p.Drop.TAG, "KEY on an untrusted transport")
        except p.LineError as err:
            self.counters.drop(err.reason)
            return "none", None
        msg = parsed.message
        if isinstance(msg, p.KeyProvision):
            self.counters.ok += 1
            self.key, self.last_seq, self.shown = msg.key, 0, None
            return "key", None
        if isinstance(msg, p.Hello):
            self.counters.ok += 1
            if msg.peer_nonce is not None:
                return "none", None
            peer = msg.nonce if self.key is not None else None
            hello = p.Hello("node", self.node_id, "sim-1.0", new_nonce(), peer, self.last_seq)
            return "reply", p.encode(hello, self.key)
        if isinstance(msg, p.Event):
            if msg.seq <= self.last_seq:
                self.counters.drop(p.Drop.DUPLICATE)
                return "none", None
            self.counters.ok += 1
            self.last_seq = msg.seq
            if msg.kind == "leave":
                if self.shown is not None and self.shown.track == msg.track:
                    self.shown = None
            else:
                self.shown = msg
            return "show", msg
        self.counters.ok += 1
        return "none", None

    def command(self, command: str) -> bytes:
        if self.key is None:
            raise RuntimeError("a node without a key cannot send commands")
        self.command_seq += 1
        track = self.shown.track if self.shown is not None else 0
        return p.encode(p.Command(self.command_seq, self.node_id, command, track), self.key)


class NodeSimulator:
    """A node MCU on the master side of a pty; ``path`` is the serial port to give the peer."""

    def __init__(self, key: bytes | None = None, node_id: str = "sim-node", answer_hello=True):
        self.state = NodeState(node_id, key)
        self.answer_hello = answer_hello
        self.received: list[Received] = []
        self.shown: list[p.Event] = []
        self.keys_received = 0
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline before the peer opens it
        # Holding the slave open keeps the pty alive while the peer process restarts.
        self.path = os.ttyname(self._slave)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zeke-nodesim", daemon=True)
        self._framer = p.Framer(self.state.counters)

    def start(self) -> NodeSimulator:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                time.sleep(0.05)  # no peer has the pty open right now
                continue
            now = time.time()
            for line in self._framer.feed(data):
                with self._lock:
                    self.received.append(Received(line, now))
                    action, value = self.state.on_line(line)
                    if action == "show":
                        self.shown.append(value)  # type: ignore[arg-type]
                    elif action == "key":
                        self.keys_received += 1
                if action == "reply" and self.answer_hello:
                    self.write(value)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        os.write(self._master, data)

    def press(self, command: str) -> bytes:
        """A button press: sends a tagged CMD and returns the line sent."""
        with self._lock:
            line = self.state.command(command)
        self.write(line)
        return line

    def event_lines(self) -> list[bytes]:
        with self._lock:
            return [r.raw for r in self.received if r.raw.startswith(p.encode_head("EVT"))]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self):
                    return True
            time.sleep(0.02)
        with self._lock:
            return bool(predicate(self))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> NodeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
