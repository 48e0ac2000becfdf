"""``zeke mesh run``: events from the local socket to every paired gateway, commands back.

One ``GatewayLink`` per paired gateway holds a bounded queue of tagged event lines numbered
by sequence. A link connects (TCP after the mDNS lookup, or the serial port in direct mode),
proves the key both ways before sending anything, resends what the gateway has not got and
waits for acknowledgements; on failure it reconnects with exponential backoff. Node commands
come back tagged, are checked and de-duplicated, and go to stdout and the commands socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from zeke import __version__
from zeke.events import EmotionEvent
from zeke.mesh import protocol as p
from zeke.mesh.auth import new_nonce
from zeke.mesh.discovery import GatewayInfo, GatewayWatcher, protocol_mismatch
from zeke.mesh.link import LineStream, LinkClosed, McuLink
from zeke.mesh.pairing import Pairing, PairingStore, write_atomic
from zeke.mesh.queue import DeliveryQueue, SequenceAllocator
from zeke.mesh.settings import MeshSettings

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0
HANDSHAKE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NodeCommand:
    """A checked button command from a node, as served to local readers (JSON line)."""

    gateway: str
    node: str
    command: str
    track_id: int
    seq: int
    ts: float

    def to_json(self) -> str:
        return json.dumps({"type": "command", **asdict(self)}, separators=(",", ":"))


class HandshakeFailed(Exception):
    """The peer could not prove it holds the pairing key."""


class Backoff:
    """Exponential backoff with jitter, reset after a good connection."""

    def __init__(self, initial: float, maximum: float):
        self.initial, self.maximum = initial, maximum
        self.current = initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.maximum, self.current * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.current = self.initial


@dataclass
class LinkStats:
    state: str = "waiting"
    address: str = ""
    connects: int = 0
    auth_failures: int = 0
    sent: int = 0
    resent: int = 0
    commands: int = 0
    duplicate_commands: int = 0
    last_error: str = ""
    lines: dict[str, int] = field(default_factory=dict)


class Session(Protocol):
    peer_last: int
    acks_on_write: bool
    #: The tag context of the gateway's own lines (acks, heartbeats) in this session.
    sender: str

    async def send(self, lines: list[tuple[int, bytes]]) -> None: ...
    async def read(self) -> p.Parsed: ...
    async def close(self) -> None: ...


class TcpSession:
    """An authenticated TCP session with a gateway (after ``open``)."""

    acks_on_write = False

    def __init__(self, stream: LineStream):
        self.stream = stream
        self.peer_last = 0
        #: The tag context of the gateway's lines in this session (set by the handshake).
        self.sender = ""

    @classmethod
    async def open(
        cls, address: str, port: int, pairing: Pairing, self_id: str, counters: p.DropCounters
    ) -> TcpSession:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port), CONNECT_TIMEOUT_S
        )
        session = cls(LineStream(reader, writer, counters))
        try:
            await session._handshake(pairing, self_id)
        except BaseException:
            await session.close()
            raise
        return session

    async def _handshake(self, pairing: Pairing, self_id: str) -> None:
        """We open with a fresh nonce; the gateway must prove the key on it, as a gateway."""
        nonce = new_nonce()
        await self.stream.send(p.encode(p.Hello("app", self_id, __version__, nonce, None, 0)))
        reply = await self.stream.read_message(None, HANDSHAKE_TIMEOUT_S)
        msg = reply.message
        if not (
            isinstance(msg, p.Hello)
            and msg.role == "gw"
            and msg.peer_nonce == nonce
            and msg.nonce != nonce
            and p.verify(reply, pairing.key, p.gateway_to(nonce))
        ):
            self.stream.counters.drop(p.Drop.TAG)
            raise HandshakeFailed("the gateway did not prove the pairing key")
        proof = p.Hello("app", self_id, __version__, nonce, msg.nonce, msg.last)
        await self.stream.send(p.encode(proof, pairing.key))
        self.peer_last = msg.last
        self.sender = p.gateway_to(nonce)

    async def send(self, lines: list[tuple[int, bytes]]) -> None:
        await self.stream.send(b"".join(line for _, line in lines))

    async def read(self) -> p.Parsed:
        return await self.stream.read_message(None)

    async def close(self) -> None:
        await self.stream.close()


class SerialSession:
    """Direct mode: the MCU on a serial port is the whole gateway."""

    acks_on_write = True
    sender = p.NODE  # the MCU is the node itself

    def __init__(self, mcu: McuLink):
        self.mcu = mcu
        self.peer_last = mcu.mcu_last or 0

    async def send(self, lines: list[tuple[int, bytes]]) -> None:
        await self.mcu.write_events(lines)

    async def read(self) -> p.Parsed:
        return await self.mcu.read()

    async def close(self) -> None:
        self.mcu.close()


class GatewayLink:
    """Delivery to one paired gateway (network) or one serial MCU (direct mode)."""

    def __init__(
        self,
        pairing: Pairing,
        store: PairingStore,
        settings: MeshSettings,
        self_id: str,
        on_command: Callable[[NodeCommand], None],
        serial_port: str | None = None,
        watcher: GatewayWatcher | None = None,
    ):
        self.pairing = pairing
        self.name = pairing.name
        self.settings = settings
        self.self_id = self_id
        self.on_command = on_command
        self.serial_port = serial_port
        self.watcher = watcher
        self.queue = DeliveryQueue(settings.queue_size)
        self.allocator = SequenceAllocator(
            lambda count, floor: store.reserve(pairing.name, count, floor)
        )
        self.stats = LinkStats()
        self.counters = p.DropCounters()
        self._wake = asyncio.Event()
        self._seen_commands: dict[str, deque[int]] = {}
        self._gateway_changed = asyncio.Event()
        self._sent_max = 0

    def enqueue(self, event: EmotionEvent) -> None:
        seq = self.allocator.next()
        line = p.encode(p.event_from_emotion(event, seq), self.pairing.key)
        self.queue.push(seq, line)
        self._wake.set()

    def gateway_changed(self) -> None:
        """The browser saw this gateway (re)appear: retry now instead of after the backoff."""
        self._gateway_changed.set()

    async def run(self) -> None:
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            try:
                session = await self._connect()
            except HandshakeFailed as err:
                self.stats.auth_failures += 1
                self._fail(f"{err}: sending it nothing (pair again if it was reset)")
            except (OSError, asyncio.TimeoutError, LinkClosed, LookupError) as err:
                self._fail(str(err) or type(err).__name__)
            else:
                backoff.reset()
                try:
                    await self._pump(session)
                except (OSError, asyncio.TimeoutError, LinkClosed) as err:
                    self._fail(f"link lost: {err or type(err).__name__}")
                finally:
                    await session.close()
            self.stats.state = "backoff"
            self._gateway_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._gateway_changed.wait(), backoff.next())

    def _fail(self, reason: str) -> None:
        if reason != self.stats.last_error:
            log.warning("gateway %s: %s", self.name, reason)
        self.stats.last_error = reason

    async def _connect(self) -> Session:
        self.stats.state = "connecting"
        if self.serial_port is not None:
            mcu = McuLink(
                self.serial_port,
                self.settings.baud,
                self.pairing.key,
                self.self_id,
                __version__,
                role="app",
            )
            mcu.counters = self.counters
            await mcu.start()
            self.stats.address = self.serial_port
            return SerialSession(mcu)
        assert self.watcher is not None
        info: GatewayInfo | None = self.watcher.gateways.get(self.name)
        if info is None or not info.addresses:
            info = await self.watcher.refresh(self.name)
        if info is None or not info.addresses:
            raise LookupError("not on the network (waiting for its mDNS announcement)")
        mismatch = protocol_mismatch(info)
        if mismatch is not None:
            raise LookupError(mismatch)
        if info.id and info.id != self.pairing.gateway_id:
            log.warning(
                "gateway %s now advertises id %s (paired with %s)",
                self.name,
                info.id,
                self.pairing.gateway_id,
            )
        last_error: Exception | None = None
        for address in info.addresses:
            try:
                session = await TcpSession.open(
                    address, info.port, self.pairing, self.self_id, self.counters
                )
            except (OSError, asyncio.TimeoutError) as err:
                last_error = err
                continue
            self.stats.address = f"{address}:{info.port}"
            return session
        # The cached address may be stale (a restarted gateway): look again next time.
        await self.watcher.refresh(self.name)
        raise last_error or LookupError("no address")

    async def _pump(self, session: Session) -> None:
        self.stats.connects += 1
        self.stats.state = "connected"
        self.stats.last_error = ""
        log.info("gateway %s connected at %s", self.name, self.stats.address)
        self.allocator.skip_past(session.peer_last)
        self.queue.ack(session.peer_last)
        sent_upto = session.peer_last
        # What the last session sent but the gateway never got goes again (counted).
        self.stats.resent += sum(
            1 for seq, _ in self.queue.after(sent_upto) if seq <= self._sent_max
        )
        reader = asyncio.ensure_future(self._read(session))
        try:
            while True:
                if reader.done():
                    reader.result()  # raises what ended the reader
                    raise LinkClosed("reader ended")
                pending = self.queue.after(sent_upto)
                if pending:
                    await session.send(pending)
                    sent_upto = pending[-1][0]
                    self._sent_max = max(self._sent_max, sent_upto)
                    self.stats.sent += len(pending)
                    if session.acks_on_write:
                        self.queue.ack(sent_upto)
                    continue
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    [waiter, reader],
                    timeout=self.settings.heartbeat_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _read(self, session: Session) -> None:
        silence = None if session.acks_on_write else self.settings.heartbeat_s * 3
        while True:
            try:
                parsed = await asyncio.wait_for(session.read(), silence)
            except asyncio.TimeoutError as err:
                raise LinkClosed("the gateway has gone silent") from err
            msg = parsed.message
            # Commands are the nodes' own lines, relayed verbatim; the rest is the gateway's.
            sender = p.NODE if isinstance(msg, p.Command) else session.sender
            if parsed.tag is None or not p.verify(parsed, self.pairing.key, sender):
                self.counters.drop(p.Drop.TAG)
                self.counters.ok -= 1
                continue
            if isinstance(msg, p.Ack):
                if msg.seq > max(self._sent_max, session.peer_last):  # never sent: not believed
                    self.counters.drop(p.Drop.DUPLICATE)
                    self.counters.ok -= 1
                    continue
                self.queue.ack(msg.seq)
            elif isinstance(msg, p.Command):
                self._command(msg)

    def _command(self, msg: p.Command) -> None:
        seen = self._seen_commands.setdefault(msg.node, deque(maxlen=256))
        if msg.seq in seen:
            self.stats.duplicate_commands += 1
            self.counters.drop(p.Drop.DUPLICATE)
            return
        seen.append(msg.seq)
        self.stats.commands += 1
        self.on_command(
            NodeCommand(self.name, msg.node, msg.command, msg.track, msg.seq, time.time())
        )

    def status(self) -> dict[str, object]:
        doc = asdict(self.stats)
        doc.update(
            queued=len(self.queue),
            acked=self.queue.acked,
            dropped_oldest=self.queue.dropped_oldest,
            enqueued=self.queue.pushed,
            lines=self.counters.as_dict(),
            serial=self.serial_port,
        )
        return doc


class Forwarder:
    """Reads the event socket and feeds every link (and the MQTT sink); serves commands."""

    def __init__(
        self,
        settings: MeshSettings,
        events_socket: Path,
        store: PairingStore,
        self_id: str,
        serial_port: str | None = None,
        serial_name: str = "direct",
        only: list[str] | None = None,
        status_file: Path | None = None,
        on_command: Callable[[NodeCommand], None] | None = None,
        sink: object | None = None,
    ):
        self.settings = settings
        self.events_socket = Path(events_socket)
        self.store = store
        self.self_id = self_id
        self.serial_port = serial_port
        self.serial_name = serial_name
        self.only = set(only or [])
        self.status_file = status_file
        self.on_command = on_command or (lambda cmd: None)
        self.sink = sink
        self.links: dict[str, GatewayLink] = {}
        self.watcher: GatewayWatcher | None = None
        self.events_in = 0
        self.bad_events = 0
        self.event_connects = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    def _add_links(self) -> None:
        if self.serial_port is not None:
            if self.serial_name not in self.links:
                pairing = self.store.get(self.serial_name)
                assert pairing is not None
                self._start_link(
                    GatewayLink(
                        pairing,
                        self.store,
                        self.settings,
                        self.self_id,
                        self.on_command,
                        serial_port=self.serial_port,
                    )
                )
            return
        for name, pairing in self.store.load().items():
            if name in self.links or (self.only and name not in self.only):
                continue
            self._start_link(
                GatewayLink(
                    pairing,
                    self.store,
                    self.settings,
                    self.self_id,
                    self.on_command,
                    watcher=self.watcher,
                )
            )

    def _start_link(self, link: GatewayLink) -> None:
        self.links[link.name] = link
        self._tasks.append(asyncio.ensure_future(link.run()))
        log.info("forwarding to gateway %s", link.name)

    def _on_gateway(self, name: str, info: GatewayInfo | None) -> None:
        link = self.links.get(name)
        if link is not None and info is not None:
            link.gateway_changed()

    async def run(self) -> None:
        if self.serial_port is None:
            self.watcher = GatewayWatcher(self.settings.interfaces or None, self._on_gateway)
            await self.watcher.start()
        self._add_links()
        self._tasks.append(asyncio.ensure_future(self._read_events()))
        self._tasks.append(asyncio.ensure_future(self._housekeeping()))
        try:
            await self._stop.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.watcher is not None:
                await self.watcher.close()
            self.write_status()

    def stop(self) -> None:
        self._stop.set()

    async def _read_events(self) -> None:
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.events_socket))
            except OSError as err:
                log.debug("event socket %s: %s", self.events_socket, err)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self.event_connects += 1
            log.info("reading events from %s", self.events_socket)
            try:
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    if line.strip():
                        self._event(line)
            except (OSError, ValueError) as err:
                log.warning("event socket: %s", err)
            finally:
                writer.close()
            await asyncio.sleep(backoff.next())

    def _event(self, line: bytes) -> None:
        try:
            event = EmotionEvent.from_json(line)
        except (ValueError, TypeError, KeyError) as err:
            self.bad_events += 1
            log.debug("bad event line %r: %s", line[:80], err)
            return
        self.events_in += 1
        for link in self.links.values():
            link.enqueue(event)
        if self.sink is not None:
            self.sink.publish_event(event)  # type: ignore[attr-defined]

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            with contextlib.suppress(Exception):
                self._add_links()
            self.write_status()

    def status(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "events_in": self.events_in,
            "bad_events": self.bad_events,
            "event_connects": self.event_connects,
            "gateways": {name: link.status() for name, link in self.links.items()},
        }
        if self.sink is not None:
            doc["mqtt"] = self.sink.status()  # type: ignore[attr-defined]
        return doc

    def write_status(self) -> None:
        if self.status_file is None:
            return
        with contextlib.suppress(OSError):
            write_atomic(self.status_file, json.dumps(self.status(), indent=2).encode())
