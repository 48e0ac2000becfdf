"""The software gateway: relays a paired appliance's events to an MCU on a serial port.

It does what ``firmware/gateway`` does on an Argon, on any Linux box: advertise ``_zeke._tcp``,
accept the appliance over TCP, check its handshake and every event tag, write events to the
MCU in order exactly once (the MCU's hello says what it already has), acknowledge them, and
relay the MCU's tagged commands back. Nothing reaches the MCU from a peer without the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import secrets
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from zeke import __version__
from zeke.errors import ConfigError, InputError, UsageError
from zeke.inputs import read_regular
from zeke.mesh import protocol as p
from zeke.mesh.auth import new_key, new_nonce
from zeke.mesh.discovery import Advertiser, resolve_interfaces
from zeke.mesh.link import LineStream, LinkClosed, McuLink
from zeke.mesh.pairing import check_private, default_state_dir, write_atomic, write_private

log = logging.getLogger(__name__)
#: One deadline for the whole handshake, however the peer trickles its bytes.
HANDSHAKE_TIMEOUT_S = 5.0
#: Connections that have not proven the key yet: in total, and from one address.
MAX_UNAUTHENTICATED = 16
MAX_UNAUTHENTICATED_PER_PEER = 4
#: Nonces this gateway issued lately; none of them is ever taken as a peer's nonce.
ISSUED_NONCES_KEPT = 256
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")


def default_name() -> str:
    host = socket.gethostname().split(".")[0]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", host)[:40] or "zeke"
    return f"{cleaned}-gateway"


def check_name(name: str) -> str:
    if not _NAME_OK.match(name):
        raise UsageError(
            f"bad gateway name {name!r}",
            hint="use 1-63 letters, digits, spaces, '_', '.' or '-', starting with a letter/digit",
        )
    return name


def check_id(gateway_id: object) -> str:
    """A stored gateway id, as the protocol's id field allows it."""
    if not isinstance(gateway_id, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,24}", gateway_id):
        raise ValueError("bad id")
    return gateway_id


@dataclass
class GatewayIdentity:
    """Who this gateway is (id in TXT and hellos) and the key appliances pair with."""

    id: str
    key: bytes

    @classmethod
    def load_or_create(cls, state_dir: Path) -> GatewayIdentity:
        path = state_dir / "identity.json"
        if path.exists():
            check_private(path)
            hint = f"delete {path} to make a new identity (then pair appliances again)"
            raw = read_regular(
                path, "gateway identity", max_bytes=4096, error=ConfigError, hint=hint
            )
            try:
                doc = json.loads(raw.decode("utf-8"))
                return cls(id=check_id(doc["id"]), key=bytes.fromhex(doc["key"]))
            except (ValueError, KeyError, TypeError) as err:
                raise ConfigError(f"{path} is not a gateway identity ({err})", hint=hint) from None
        identity = cls(id=secrets.token_hex(6), key=new_key())
        write_private(path, json.dumps({"id": identity.id, "key": identity.key.hex()}).encode())
        return identity


@dataclass
class Session:
    """An appliance that proved the key: its stream and the nonce that binds our lines to it."""

    stream: LineStream
    app_id: str
    app_nonce: str

    @property
    def sender(self) -> str:
        return p.gateway_to(self.app_nonce)


def gateway_state_dir(name: str, base: Path | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return (base or default_state_dir() / "gateway") / safe


class Gateway:
    def __init__(
        self,
        name: str,
        serial_port: str,
        identity: GatewayIdentity,
        interfaces: list[str] | None = None,
        port: int = 0,
        baud: int = 115200,
        ttl: int = 120,
        heartbeat_s: float = 5.0,
        status_file: Path | None = None,
    ):
        self.name = check_name(name)
        self.identity = identity
        self.interfaces = interfaces
        self.port = port
        self.heartbeat_s = heartbeat_s
        self.status_file = status_file
        self.mcu = McuLink(serial_port, baud, identity.key, identity.id, __version__)
        self.advertiser = Advertiser(interfaces, ttl=ttl)
        self.counters = p.DropCounters()  # lines from appliances
        self.sessions = 0
        self.events_relayed = 0
        self.commands_relayed = 0
        self.duplicates = 0
        self.auth_failures = 0
        self.refused_connections = 0
        self._active: Session | None = None
        self._unauthenticated: Counter[str] = Counter()
        self._issued: deque[str] = deque(maxlen=ISSUED_NONCES_KEPT)
        self._listeners: list[socket.socket] = []
        self._connections: set[asyncio.Future[None]] = set()
        self.accept_pauses = 0
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._advertised_nodes = -1
        self._last_heartbeat = 0.0

    @property
    def last_seq(self) -> int:
        return max(self.mcu.last_written, self.mcu.mcu_last or 0)

    def txt(self) -> dict[str, str]:
        return {
            "id": self.identity.id,
            "proto": str(p.PROTOCOL_VERSION),
            "fw": __version__,
            "nodes": str(self.mcu.nodes),
        }

    async def run(self) -> None:
        try:
            await self.mcu.start()
            ready = await self._wait_for_mcu()
        except LinkClosed as err:
            self.mcu.close()
            raise InputError(
                f"the serial port {self.mcu.port} closed while waiting for the MCU ({err})",
                hint="check the cable and --serial; the MCU may have been unplugged",
            ) from err
        if not ready:
            await self.shutdown()
            return
        hosts = resolve_interfaces(self.interfaces)
        bind = hosts if isinstance(hosts, list) else None
        self._listen(bind)
        await self.advertiser.start(self.name, self.port, self.identity.id, self.txt())
        self._advertised_nodes = self.mcu.nodes
        log.info("gateway %s (id %s) listening on port %d", self.name, self.identity.id, self.port)
        tasks = [
            asyncio.ensure_future(self._mcu_reader()),
            asyncio.ensure_future(self._housekeeping()),
            *(asyncio.ensure_future(self._accept(sock)) for sock in self._listeners),
        ]
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _wait_for_mcu(self) -> bool:
        """Until the MCU answers a hello, ask again with backoff; False if stopped meanwhile.

        A gateway started before its MCU is flashed (or on the wrong port or baud) relays
        nothing, so it says once what it waits for and what to do, and does not advertise.
        """
        delay = 1.0
        next_note = 0.0
        while self.mcu.mcu_id is None and not self.mcu.provisioned:
            now = time.monotonic()
            if now >= next_note and self.mcu.key_mismatch:
                log.warning(
                    "the MCU on %s holds another gateway's key, so nothing can be relayed to it;"
                    " give it this gateway's key over its USB serial (firmware/README.md,"
                    " 'Keys'). Retrying with backoff.",
                    self.mcu.port,
                )
                next_note = now + 300.0
            elif now >= next_note:
                log.warning(
                    "waiting for the MCU on %s (%d baud): it does not answer the protocol's hello;"
                    " flash firmware/gateway (Argon) or firmware/node onto it, and check --serial"
                    " and --baud. Retrying with backoff.",
                    self.mcu.port,
                    self.mcu.baud,
                )
                next_note = now + 300.0
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
                return False
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 30.0)
            await self.mcu.hello()
        return True

    async def shutdown(self) -> None:
        await self.advertiser.close()
        for sock in self._listeners:
            sock.close()
        self._listeners.clear()
        for task in list(self._connections):
            task.cancel()
        if self._active is not None:
            await self._active.stream.close()
        self.mcu.close()
        self.write_status()

    def _listen(self, hosts: list[str] | None) -> None:
        """Listening sockets on ``hosts`` (all interfaces if None), all on one port."""
        for host in hosts or [""]:
            sock = socket.create_server((host, self.port), backlog=64)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._listeners.append(sock)

    async def _accept(self, sock: socket.socket) -> None:
        """Accept connections; when descriptors run out, say so once and back off until free.

        asyncio's own server retries a failing ``accept()`` in a tight loop and logs a
        traceback each time, so the gateway runs this loop itself.
        """
        loop = asyncio.get_running_loop()
        delay = 0.1
        last_starved = -1e9  # one warning per episode: none in the 30 s before
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as err:
                if err.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                now = time.monotonic()
                if now - last_starved > 30.0:
                    self.accept_pauses += 1
                    log.warning(
                        "out of file descriptors (%s): pausing new connections until some are"
                        " free; raise LimitNOFILE or find what holds them",
                        err.strerror,
                    )
                last_starved = now
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            task = asyncio.ensure_future(self._serve_socket(conn))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve_socket(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = LineStream(reader, writer, self.counters)
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if (
            sum(self._unauthenticated.values()) >= MAX_UNAUTHENTICATED
            or self._unauthenticated[host] >= MAX_UNAUTHENTICATED_PER_PEER
        ):
            self.refused_connections += 1
            await stream.close()
            return
        self._unauthenticated[host] += 1
        session: Session | None = None
        try:
            try:
                session = await asyncio.wait_for(self._handshake(stream), HANDSHAKE_TIMEOUT_S)
            except asyncio.TimeoutError:
                session = None
            finally:
                self._unauthenticated[host] -= 1
                if self._unauthenticated[host] <= 0:
                    del self._unauthenticated[host]
            if session is None:
                self.auth_failures += 1
                log.warning("appliance %s did not prove the key in time: closing", peer)
                return
            # One appliance per gateway: the newest wins, but only once it has proven the key.
            if self._active is not None:
                await self._active.stream.close()
            self._active = session
            self.sessions += 1
            log.info("appliance %s (%s) paired and connected", session.app_id, peer)
            await self._relay_events(session)
        except (LinkClosed, asyncio.TimeoutError) as err:
            log.info("appliance %s gone: %s", peer, err)
        finally:
            if session is not None and self._active is session:
                self._active = None
            await stream.close()

    async def _handshake(self, stream: LineStream) -> Session | None:
        """Appliance opens, we prove the key on its nonce, it proves the key on ours.

        The proof must be the appliance's (role ``app``, tagged as the appliance's, for the
        nonce it opened with and the one we issued), and a nonce we issued is never taken as
        the appliance's: a gateway's own answer can therefore never be reflected as a proof.
        """
        opening = await stream.read_message(None)
        msg = opening.message
        if (
            not isinstance(msg, p.Hello)
            or msg.peer_nonce is not None
            or msg.role != "app"
            or msg.nonce in self._issued
        ):
            self.counters.drop(p.Drop.TAG)
            return None
        nonce = new_nonce()
        self._issued.append(nonce)
        reply = p.Hello("gw", self.identity.id, __version__, nonce, msg.nonce, self.last_seq)
        await stream.send(p.encode(reply, self.identity.key))
        proof = await stream.read_message(None)
        answer = proof.message
        ok = (
            isinstance(answer, p.Hello)
            and answer.role == "app"
            and answer.id == msg.id
            and answer.nonce == msg.nonce
            and answer.peer_nonce == nonce
            and p.verify(proof, self.identity.key, p.APP)
        )
        if not ok:
            self.counters.drop(p.Drop.TAG)
            return None
        return Session(stream, msg.id, msg.nonce)

    async def _relay_events(self, session: Session) -> None:
        key = self.identity.key
        stream = session.stream
        while True:
            batch: list[tuple[int, bytes]] = []
            for raw in await stream.read_lines():
                try:
                    parsed = p.check(raw, key, p.APP)
                except p.LineError as err:
                    self.counters.drop(err.reason)
                    continue
                if parsed.tag is None:  # an untagged hello mid-session
                    self.counters.drop(p.Drop.TAG)
                    continue
                self.counters.ok += 1
                msg = parsed.message
                if isinstance(msg, p.Event):
                    if msg.seq <= max(self.last_seq, batch[-1][0] if batch else 0):
                        self.duplicates += 1
                        self.counters.drop(p.Drop.DUPLICATE)
                        continue
                    batch.append((msg.seq, raw + b"\n"))
            if batch:
                await self.mcu.write_events(batch)
                self.events_relayed += len(batch)
            await stream.send(p.encode(p.Ack(self.last_seq), key, session.sender))

    async def _mcu_reader(self) -> None:
        while True:
            try:
                parsed = await self.mcu.read()
            except LinkClosed as err:
                log.error("serial port %s closed: %s", self.mcu.port, err)
                self.stop()
                return
            if isinstance(parsed.message, p.Command) and self._active is not None:
                with contextlib.suppress(LinkClosed):
                    await self._active.stream.send(p.line_of(parsed))
                    self.commands_relayed += 1

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(min(self.heartbeat_s, 1.0))
            if self.mcu.nodes != self._advertised_nodes:
                self._advertised_nodes = self.mcu.nodes
                with contextlib.suppress(Exception):
                    await self.advertiser.update(self.txt())
            now = time.monotonic()
            if self._active is not None and now - self._last_heartbeat >= self.heartbeat_s:
                self._last_heartbeat = now
                hb = p.Heartbeat(
                    int(time.monotonic() - self._started) & 0xFFFFFFFF,
                    min(self.mcu.nodes, 65535),
                    (self.counters.total_dropped + self.mcu.counters.total_dropped) & 0xFFFFFFFF,
                )
                active = self._active
                with contextlib.suppress(LinkClosed):
                    await active.stream.send(p.encode(hb, self.identity.key, active.sender))
            self.write_status()

    def status(self) -> dict[str, object]:
        return {
            "name": self.name,
            "id": self.identity.id,
            "port": self.port,
            "serial": self.mcu.port,
            "connected": self._active is not None,
            "sessions": self.sessions,
            "auth_failures": self.auth_failures,
            "refused_connections": self.refused_connections,
            "accept_pauses": self.accept_pauses,
            "events_relayed": self.events_relayed,
            "duplicates": self.duplicates,
            "commands_relayed": self.commands_relayed,
            "last_seq": self.last_seq,
            "mcu": {
                "id": self.mcu.mcu_id,
                "last": self.mcu.mcu_last,
                "nodes": self.mcu.nodes,
                "key_mismatch": self.mcu.key_mismatch,
                "provisioned": self.mcu.provisioned,
                "lines": self.mcu.counters.as_dict(),
            },
            "lines": self.counters.as_dict(),
        }

    def write_status(self) -> None:
        if self.status_file is None:
            return
        with contextlib.suppress(OSError):
            write_atomic(self.status_file, json.dumps(self.status(), indent=2).encode())
