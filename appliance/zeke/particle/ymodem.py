"""YMODEM batch sender for Particle's listening-mode receiver, quirks included.

Particle's receiver (device-os ``system_ymodem.cpp``) differs from textbook YMODEM: it ACKs the
header with ``ACK`` + ``C``, never checks the block CRC, sends ``C`` to ask for a resend, NAKs
only a sequence mismatch, ACKs the first ``EOT``, and answers the end-of-batch block only after
validating the whole image (``ACK`` or ``CAN CAN`` + ``Validation failed: ...``). The sender here
sends real CRC-16/XMODEM bytes anyway so it also works with standard receivers.
"""

from __future__ import annotations

import binascii
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zeke.particle.errors import (
    DeviceDisconnectedError,
    DeviceOSTooNewError,
    DeviceRejectedError,
    PhaseTimeoutError,
    PortBusyError,
    TransferAbortedError,
)
from zeke.particle.port import MODEM_MANAGER_HINT, Link

SOH, STX, EOT, ACK, NAK, CAN = 0x01, 0x02, 0x04, 0x06, 0x15, 0x18
CRC_POLL = 0x43  # 'C'
READY = -1  # pseudo event: the ready line arrived
PAD = 0x1A
PROTOCOL_BYTES = frozenset({ACK, NAK, CAN, CRC_POLL})
CAN_PAIR_WAIT_S = 1.0
POLL_PEEK_S = 0.05  # a 'C' followed by text within this time is part of a log line

VALIDATION_RE = re.compile(rb"Validation failed: (0x[0-9a-fA-F]+|-?\d+)")
DEVICE_MESSAGES_RE = re.compile(
    rb"Validation failed: \S+|Failed to save chunk!|Failed to receive the file!|Aborted by user\."
    rb"|The file size is higher than the allowed space memory!"
    rb"|Serial/YModem flashing is no longer supported"
)

# Device OS <= 1.5.x: "0x%x" of (checks performed XOR checks passed).
VALIDATION_BITS = {
    0x02: "integrity: CRC-32 mismatch",
    0x04: "dependencies not met",
    0x08: "address range outside the slot",
    0x10: "platform mismatch",
    0x20: "product mismatch",
    0x40: "replacing this module breaks other modules",
}
# Device OS 2.0-5.x: negative system error codes.
VALIDATION_CODES = {
    -1300: "module not found",
    -1310: "unsupported module",
    -1320: "validation failed",
    -1330: "integrity: CRC-32 mismatch",
    -1340: "dependencies not met",
    -1350: "invalid address range",
    -1360: "platform mismatch",
    -1370: "invalid module format",
}


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0): what real YMODEM puts after each payload."""
    return binascii.crc_hqx(data, 0)


def build_block(seq: int, payload: bytes, size: int | None = None) -> bytes:
    """One block: SOH/STX, seq, ~seq, payload padded to 128/1024 bytes, CRC-16 (high first)."""
    size = size or (128 if len(payload) <= 128 else 1024)
    if len(payload) > size:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a {size}-byte block")
    body = payload + bytes([PAD]) * (size - len(payload))
    seq &= 0xFF
    return (
        bytes([SOH if size == 128 else STX, seq, 0xFF - seq])
        + body
        + crc16_xmodem(body).to_bytes(2, "big")
    )


def header_payload(name: str, size: int) -> bytes:
    """Block 0 payload: ``name NUL size SP`` then zero fill to 128 bytes."""
    raw = name.encode("ascii", "replace")[:64] + b"\0" + str(size).encode() + b" "
    return raw.ljust(128, b"\0")


def explain_validation(code: str) -> str:
    """Turn ``0x10`` / ``-1360`` into words."""
    if code.lower().startswith("0x"):
        mask = int(code, 16)
        if mask == 0x5E:
            return "no slot for this module: every check failed"
        names = [text for bit, text in VALIDATION_BITS.items() if mask & bit]
        return ", ".join(names) or "unknown reason"
    return VALIDATION_CODES.get(int(code), "unknown reason")


def next_event(
    link: Link,
    deadline: float,
    text: bytearray,
    ready: re.Pattern[bytes] | None = None,
) -> int | None:
    """The next protocol event before ``deadline``; text bytes in between go to ``text``.

    Returns ACK, NAK, CAN (only for a CAN pair), CRC_POLL (only for a ``C`` standing alone,
    not one inside a log line such as ``Cloud connected``), READY when ``ready`` matches a
    complete line, or None on the deadline.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        chunk = link.read(4096, remaining)
        if not chunk:
            return None
        for pos, byte in enumerate(chunk):
            rest = chunk[pos + 1 :]
            if byte in (ACK, NAK):
                link.unread(rest)
                return byte
            if byte == CAN:
                if not rest:
                    rest = link.read(4096, CAN_PAIR_WAIT_S)
                if rest[:1] == bytes([CAN]):
                    link.unread(rest[1:])
                    return CAN
                link.unread(rest)  # a lone CAN is line noise
                break
            if byte == CRC_POLL and (not text or text[-1] in b"\r\n"):
                fetched = not rest
                if fetched:
                    rest = link.read(4096, POLL_PEEK_S)
                if not rest or rest[0] in PROTOCOL_BYTES:
                    link.unread(rest)
                    return CRC_POLL
                if fetched:  # the 'C' starts a text line; rescan what followed it
                    text.append(byte)
                    link.unread(rest)
                    break
            text.append(byte)
            if ready is not None and byte == 0x0A and ready.search(text):
                link.unread(rest)
                return READY


def read_device_text(link: Link, total: float = 2.0, idle: float = 0.3) -> str:
    """The text line(s) the device prints after ``CAN CAN``, CAN bytes dropped."""
    out = bytearray()
    deadline = time.monotonic() + total
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            chunk = link.read(4096, min(idle, remaining) if out.strip() else remaining)
        except DeviceDisconnectedError:
            break
        if not chunk:
            break
        out += chunk.replace(bytes([CAN]), b"")
        match = DEVICE_MESSAGES_RE.search(out)
        if match and out.find(b"\n", match.end()) >= 0:
            break
    found = DEVICE_MESSAGES_RE.search(out)
    if found:
        return found.group(0).decode("ascii", "replace")
    return out.decode("ascii", "replace").strip()


def cancellation_error(device_text: str, *, port: str, host_aborted: bool = False) -> Exception:
    """Map the device's text after ``CAN CAN`` to the catalogue."""
    validation = VALIDATION_RE.search(device_text.encode())
    if validation:
        code = validation.group(1).decode()
        return DeviceRejectedError(
            code,
            explain_validation(code),
            "nothing was installed; check the file was built for this device and Device OS",
        )
    if "no longer supported" in device_text:
        return DeviceOSTooNewError(
            "the device answered 'Serial/YModem flashing is no longer supported' "
            "(Device OS 6 or later); use DFU",
            "put it in DFU mode (hold MODE, tap RESET, release MODE when it blinks yellow) and "
            "flash with dfu-util or particle flash --local",
        )
    if "Aborted by user." in device_text and not host_aborted:
        return PortBusyError(
            f"another program aborted the transfer on {port} (the device printed 'Aborted by "
            "user.'); on Linux this is ModemManager probing the port with AT commands",
            MODEM_MANAGER_HINT,
        )
    hints = {
        "Failed to save chunk!": "the device could not write to its OTA flash area; "
        "power-cycle it and retry",
        "The file size is higher than the allowed space memory!": "the running application "
        "disabled updates (System.disableUpdates()) or the file exceeds the OTA area; boot "
        "into safe mode (hold MODE, tap RESET, release at magenta), then listening mode, retry",
    }
    return TransferAbortedError(
        f"device cancelled the transfer (CAN CAN): {device_text or 'no message'}",
        hints.get(device_text, "nothing was installed; retry, and check the cable"),
    )


@dataclass
class YModemTimeouts:
    header: float = 10.0
    block: float = 10.0
    eot: float = 10.0
    validation: float = 90.0
    header_poll_grace: float = 1.0  # the 'C' after the header ACK may be missing
    max_resends: int = 5


@dataclass
class TransferReport:
    """What happened on the wire, with seconds per phase."""

    size: int
    block_size: int
    data_blocks: int = 0
    resends: int = 0
    noise_bytes: int = 0
    phases: dict[str, float] = field(default_factory=dict)


class YModemSender:
    """Send one file as a YMODEM batch to a Particle receiver that is already waiting."""

    def __init__(
        self,
        link: Link,
        *,
        block_size: int = 1024,
        timeouts: YModemTimeouts | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ):
        if block_size not in (128, 1024):
            raise ValueError("block size must be 128 or 1024")
        self.link = link
        self.block_size = block_size
        self.timeouts = timeouts or YModemTimeouts()
        self.on_progress = on_progress
        self._noise = bytearray()

    def send(self, name: str, data: bytes) -> TransferReport:
        report = TransferReport(size=len(data), block_size=self.block_size)
        started = time.monotonic()
        self._exchange(
            build_block(0, header_payload(name, len(data)), 128),
            "header ACK",
            self.timeouts.header,
            report,
        )
        self._await_header_poll()
        report.phases["header"] = time.monotonic() - started

        started = time.monotonic()
        total_blocks = -(-len(data) // self.block_size) if data else 0
        sent = 0
        seq = 1
        while sent < len(data):
            chunk = data[sent : sent + self.block_size]
            size = 128 if len(chunk) <= 128 else self.block_size
            self._exchange(
                build_block(seq, chunk, size),
                f"ACK of block {seq}",
                self.timeouts.block,
                report,
                detail=f"block {seq} of {total_blocks}",
            )
            sent += len(chunk)
            seq += 1
            report.data_blocks += 1
            if self.on_progress:
                self.on_progress(sent, len(data))
        report.phases["data"] = time.monotonic() - started

        started = time.monotonic()
        self._exchange(bytes([EOT]), "EOT ACK", self.timeouts.eot, report)
        report.phases["eot"] = time.monotonic() - started

        started = time.monotonic()
        self._exchange(
            build_block(0, bytes(128), 128),
            "final validation",
            self.timeouts.validation,
            report,
            detail="the device validates the whole image before it answers",
        )
        report.phases["validation"] = time.monotonic() - started
        report.noise_bytes = len(self._noise)
        return report

    def _exchange(
        self,
        frame: bytes,
        phase: str,
        timeout: float,
        report: TransferReport,
        detail: str = "",
    ) -> None:
        """Write ``frame`` until ACKed; resend on ``C``; raise the catalogue error otherwise."""
        resends = 0
        while True:
            self.link.write(frame)
            event = next_event(self.link, time.monotonic() + timeout, self._noise)
            if event == ACK:
                return
            if event == CRC_POLL:
                resends += 1
                report.resends += 1
                if resends > self.timeouts.max_resends:
                    self.abort()
                    raise TransferAbortedError(
                        f"the device asked for {phase.replace(' ACK', '')} again "
                        f"{resends} times; gave up",
                        "check the USB cable and hub, then retry",
                    )
                continue
            if event == NAK:
                self.abort()
                raise TransferAbortedError(
                    f"device refused {detail or phase} with NAK (sequence mismatch)",
                    "the transfer lost sync; retry",
                )
            if event == CAN:
                text = read_device_text(self.link)
                raise cancellation_error(text, port=self.link.name)
            self.abort()
            raise PhaseTimeoutError(
                phase,
                timeout,
                detail,
                "the device stopped answering; replug it, put it in listening mode and retry",
            )

    def _await_header_poll(self) -> None:
        """Eat the ``C`` that follows the header ACK (accepted missing after a short grace)."""
        deadline = time.monotonic() + self.timeouts.header_poll_grace
        event = next_event(self.link, deadline, self._noise)
        if event == CAN:
            raise cancellation_error(read_device_text(self.link), port=self.link.name)
        if event in (ACK, NAK):  # not expected here; leave it for the first data block
            self.link.unread(bytes([event]))

    def abort(self) -> None:
        """Cancel from the host side (``CAN CAN`` at a block boundary), best effort."""
        try:
            self.link.write(bytes([CAN, CAN]))
            read_device_text(self.link, total=0.5)
        except DeviceDisconnectedError:
            pass
