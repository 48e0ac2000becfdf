"""Line transports (TCP streams, serial ports) and the MCU end both gateways and direct mode use.

``LineStream`` frames, parses and counts lines over asyncio streams. ``open_serial`` turns a
serial device (or a pty) into such streams. ``McuLink`` speaks to the MCU on a serial port:
hello exchange (learning the last event it has, so nothing is written twice), provisioning a
keyless MCU with the key, writing events and reading its commands and heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from zeke.errors import InputError
from zeke.mesh import protocol as p
from zeke.mesh.auth import new_nonce

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class LinkClosed(Exception):
    """The other end went away or broke the protocol badly enough to hang up."""


class LineStream:
    """Protocol lines over a reader/writer pair, with the framer's drop counters."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        counters: p.DropCounters | None = None,
    ):
        self.reader = reader
        self.writer = writer
        self.counters = counters if counters is not None else p.DropCounters()
        self.framer = p.Framer(self.counters)
        self._pending: list[bytes] = []

    async def read_line(self, timeout: float | None = None) -> bytes:
        """The next non-empty line (without LF); raises LinkClosed at EOF."""
        while not self._pending:
            try:
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), timeout)
            except asyncio.TimeoutError:
                raise  # a quiet peer, not a closed link (TimeoutError is an OSError too)
            except (ConnectionError, OSError) as err:
                self.framer.close()
                raise LinkClosed(str(err)) from err
            if not data:
                self.framer.close()
                raise LinkClosed("end of stream")
            self._pending.extend(self.framer.feed(data))
        return self._pending.pop(0)

    async def read_lines(self, timeout: float | None = None) -> list[bytes]:
        """Every line already received, waiting for at least one (a batch to handle at once)."""
        first = await self.read_line(timeout)
        lines = [first, *self._pending]
        self._pending.clear()
        return lines

    async def read_message(
        self, key: bytes | None, timeout: float | None = None, sender: str = p.NODE
    ) -> p.Parsed:
        """The next line that parses (and, with a key, verifies as ``sender``'s); drops counted."""
        while True:
            line = await self.read_line(timeout)
            try:
                parsed = p.parse(line) if key is None else p.check(line, key, sender)
            except p.LineError as err:
                self.counters.drop(err.reason)
                log.debug("dropped line (%s): %r", err.reason.value, line[:80])
                continue
            self.counters.ok += 1
            return parsed

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError, RuntimeError) as err:
            raise LinkClosed(str(err)) from err

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


@dataclass
class SerialHandle:
    stream: LineStream
    close: Callable[[], None]


async def open_serial(port: str, baud: int, counters: p.DropCounters | None = None) -> SerialHandle:
    """Open a serial device raw at ``baud`` (exclusively) as an asyncio LineStream."""
    import serial

    try:
        device = serial.Serial(port, baud, timeout=0, exclusive=True)
        device.reset_input_buffer()  # whatever the MCU said before we were here is stale
    except (serial.SerialException, OSError, ValueError) as err:
        raise InputError(
            f"cannot open serial port {port}: {err}",
            hint="check the cable and the port name, and that you may use it (group dialout)",
        ) from err
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    read_file = os.fdopen(os.dup(device.fileno()), "rb", buffering=0)
    write_file = os.fdopen(os.dup(device.fileno()), "wb", buffering=0)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), read_file
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, write_file
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)

    def close() -> None:
        read_transport.close()
        write_transport.close()
        with contextlib.suppress(Exception):
            device.close()

    return SerialHandle(LineStream(reader, writer, counters), close)


class McuLink:
    """The MCU on a serial port, seen from a gateway (software gateway or direct mode).

    After ``start`` the MCU has the key (provisioned here if it had none) and ``mcu_last`` is
    the last event sequence it holds, or None if it did not answer (then nothing is known).
    """

    HELLO_TIMEOUT_S = 1.5

    def __init__(
        self,
        port: str,
        baud: int,
        key: bytes,
        self_id: str,
        fw: str,
        role: str = "gw",
        provision: bool = True,
    ):
        self.port = port
        self.baud = baud
        self.key = key
        self.self_id = self_id
        self.fw = fw
        self.role = role
        self.provision = provision
        self.counters = p.DropCounters()
        self.mcu_id: str | None = None
        self.mcu_last: int | None = None
        self.nodes = 0
        self.key_mismatch = False
        self.provisioned = False
        self.written = 0
        self.last_written = 0
        self._handle: SerialHandle | None = None
        self._write_lock = asyncio.Lock()

    @property
    def stream(self) -> LineStream:
        assert self._handle is not None
        return self._handle.stream

    async def start(self) -> None:
        self._handle = await open_serial(self.port, self.baud, self.counters)
        await self.hello()

    async def hello(self) -> None:
        """Opening hello; learn the MCU's last sequence; provision a keyless MCU once."""
        for _attempt in range(2):
            nonce = new_nonce()
            hello = p.Hello(self.role, self.self_id, self.fw, nonce, None, 0)
            await self.stream.send(p.encode(hello))
            reply = await self._await_hello(nonce)
            if reply is None:
                log.info("no hello from the MCU on %s: its last event is unknown", self.port)
                return
            if reply.peer_nonce is None:  # keyless MCU: give it ours (serial is trusted)
                if not self.provision:
                    log.warning("the MCU on %s has no key", self.port)
                    return
                log.info("provisioning the MCU on %s with the gateway key", self.port)
                await self.stream.send(p.encode(p.KeyProvision(self.key)))
                self.provisioned = True
                continue
            self.mcu_id = reply.id
            self.mcu_last = reply.last
            self.nodes = max(self.nodes, 1)
            log.info("MCU %s on %s holds events up to %d", reply.id, self.port, reply.last)
            return

    async def _await_hello(self, nonce: str) -> p.Hello | None:
        deadline = asyncio.get_running_loop().time() + self.HELLO_TIMEOUT_S
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                line = await self.stream.read_line(timeout=left)
            except asyncio.TimeoutError:
                return None
            try:
                parsed = p.parse(line)
            except p.LineError as err:
                self.counters.drop(err.reason)
                continue
            msg = parsed.message
            if not isinstance(msg, p.Hello):
                self.counters.ok += 1  # valid but not what we wait for; handled later
                continue
            if msg.peer_nonce is None:
                self.counters.ok += 1
                return msg
            if msg.role != "node":  # only a node answers on this port
                self.counters.drop(p.Drop.TAG)
                continue
            if not p.verify(parsed, self.key, p.NODE):
                self.counters.drop(p.Drop.TAG)
                if not self.key_mismatch:  # said once; the gateway says what to do
                    log.error(
                        "the MCU on %s answered with another key: it belongs to another gateway",
                        self.port,
                    )
                self.key_mismatch = True
                continue
            if msg.peer_nonce != nonce:  # an answer to an earlier hello, still buffered
                self.counters.drop(p.Drop.DUPLICATE)
                continue
            self.counters.ok += 1
            return msg

    async def write_events(self, lines: list[tuple[int, bytes]]) -> int:
        """Write event lines in order, skipping what the MCU already has; returns last written."""
        async with self._write_lock:
            floor = max(self.last_written, self.mcu_last or 0)
            chunk = b"".join(line for seq, line in lines if seq > floor)
            if chunk:
                await self.stream.send(chunk)
                self.written += sum(1 for seq, _ in lines if seq > floor)
            if lines:
                self.last_written = max(floor, lines[-1][0])
            return self.last_written

    async def read(self) -> p.Parsed:
        """The next verified line from the MCU (commands, heartbeats, hellos): a node's lines."""
        while True:
            parsed = await self.stream.read_message(self.key, sender=p.NODE)
            msg = parsed.message
            if isinstance(msg, p.Heartbeat):
                self.nodes = msg.nodes
            if parsed.tag is None:
                if isinstance(msg, p.Hello):  # the MCU rebooted: ask again what it holds
                    continue
                self.counters.drop(p.Drop.TAG)
                self.counters.ok -= 1
                continue
            return parsed

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
