"""The listening-mode console: one-byte commands (`v`, `i`, `s`, `f`, `x`) and their replies.

Replies are found by regex in whatever arrives, because apps using ``SerialLogHandler`` mix log
lines into the same port on older Device OS. Text that only a second writer can provoke (the
claim-code prompt from a stray ``C``, ``Aborted by user.``) is reported as ModemManager
interference rather than misread.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from zeke.particle.errors import PortBusyError
from zeke.particle.port import LISTEN_TRIGGER_BAUD, MODEM_MANAGER_HINT, NEUTRAL_BAUD, Link
from zeke.particle.ymodem import (
    CAN,
    CRC_POLL,
    READY,
    cancellation_error,
    next_event,
    read_device_text,
)

VERSION_RE = re.compile(rb"system firmware version:[ \t]*([\w.+-]+(?: minimal)?)[^\n]*\n")
READY_RE = re.compile(rb"Waiting for the binary file to be sent[^\n]*\n")
DEVICE_ID_RE = re.compile(rb"Your (?:core|device) id is\s+([0-9A-Fa-f]{24})")
DEVICE_ID_LINE_RE = re.compile(rb"Device ID:\s*([0-9A-Fa-f]{24})")
HEX24_RE = re.compile(rb"(?<![0-9A-Fa-f])([0-9A-Fa-f]{24})(?![0-9A-Fa-f])")
IMEI_RE = re.compile(rb"IMEI: (\w+)")
ICCID_RE = re.compile(rb"ICCID: (\w+)")
SERIAL_NUMBER_RE = re.compile(rb"Serial Number: (\w+)")
# Console text that the host never asks for: a second writer (ModemManager's AT probes) typed
# `C` (claim code prompt), `w` (Wi-Fi setup) or aborted a transfer with `A`.
FOREIGN_INPUT_RE = re.compile(rb"Enter 63-digit claim code|Claim code (?:set|unchanged)|SSID: ")


def modem_manager_error(port: str, evidence: str) -> PortBusyError:
    return PortBusyError(
        f"another program is writing to {port} ({evidence}); on Linux this is ModemManager "
        "probing the port with AT commands",
        MODEM_MANAGER_HINT,
    )


def check_foreign_input(port: str, text: bytes) -> None:
    if FOREIGN_INPUT_RE.search(text):
        raise modem_manager_error(port, "the device printed its claim-code/Wi-Fi prompt")


@dataclass
class DeviceIdentity:
    device_id: str | None
    serial_number: str | None = None
    imei: str | None = None
    iccid: str | None = None


def parse_identity(text: bytes) -> DeviceIdentity:
    match = DEVICE_ID_RE.search(text) or DEVICE_ID_LINE_RE.search(text) or HEX24_RE.search(text)
    device_id = match.group(1).decode().lower() if match else None

    def pick(regex: re.Pattern[bytes]) -> str | None:
        found = regex.search(text)
        return found.group(1).decode() if found else None

    return DeviceIdentity(device_id, pick(SERIAL_NUMBER_RE), pick(IMEI_RE), pick(ICCID_RE))


def parse_modules(text: bytes) -> dict | None:
    """The ``s`` reply: the JSON line that starts with ``{"p":``."""
    for line in text.split(b"\n"):
        line = line.strip()
        if line.startswith(b'{"p"'):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


class ListeningConsole:
    """Commands for a device in listening mode, over a ``Link``."""

    def __init__(self, link: Link, *, probe_timeout: float = 2.0, idle: float = 0.25):
        self.link = link
        self.probe_timeout = probe_timeout
        self.idle = idle

    def _collect(self, done: re.Pattern[bytes], total: float) -> bytes:
        """Read until ``done`` matches, or ``idle`` s of silence after some output, or ``total``."""
        out = bytearray()
        deadline = time.monotonic() + total
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out)
            wait = min(remaining, self.idle) if out else remaining
            chunk = self.link.read(4096, wait)
            if chunk:
                out += chunk
                if done.search(out):
                    return bytes(out)
            elif out:
                return bytes(out)

    def probe_version(self) -> str | None:
        """Send ``v``; the Device OS version if the device is listening, else None."""
        self.link.drain_input()
        self.link.write(b"v")
        text = self._collect(VERSION_RE, self.probe_timeout)
        check_foreign_input(self.link.name, text)
        match = VERSION_RE.search(text)
        return match.group(1).decode() if match else None

    def enter_listening(self, timeout: float, poll: float = 0.5) -> str | None:
        """Fire the 28800-baud trigger and re-probe until the console answers or ``timeout``.

        The line stays at 28800 while probing (the console ignores the speed) so the device
        cannot miss the change, then returns to the neutral 9600 so a later trigger is a change
        again. 14400 (the DFU trigger) is never used.
        """
        deadline = time.monotonic() + timeout
        self.link.set_baudrate(LISTEN_TRIGGER_BAUD)
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                self.link.drain_input()
                self.link.write(b"v")
                text = self._collect(VERSION_RE, min(poll, max(deadline - started, 0.05)))
                check_foreign_input(self.link.name, text)
                match = VERSION_RE.search(text)
                if match:
                    return match.group(1).decode()
                rest = poll - (time.monotonic() - started)
                if rest > 0:
                    time.sleep(min(rest, max(deadline - time.monotonic(), 0)))
            return None
        finally:
            self.link.set_baudrate(NEUTRAL_BAUD)

    def identity(self, timeout: float = 20.0) -> DeviceIdentity:
        """Send ``i`` (a Boron may need ~18 s to power its modem first)."""
        self.link.drain_input()
        self.link.write(b"i")
        done = re.compile(rb"(?:Your (?:core|device) id is\s+\w{24}|Device ID:[^\n]*\n)")
        text = self._collect(done, timeout)
        if done.search(text):  # extra key/value lines follow "Device ID:" without a pause
            text += self.link.read_until_idle(self.idle, self.idle * 4)
        check_foreign_input(self.link.name, text)
        return parse_identity(text)

    def modules(self, timeout: float = 20.0) -> dict | None:
        """Send ``s``: the module inventory JSON (``p`` is the platform id)."""
        self.link.drain_input()
        self.link.write(b"s")
        text = self._collect(re.compile(rb'\{"p"[^\n]*\n'), timeout)
        check_foreign_input(self.link.name, text)
        return parse_modules(text)

    def leave_listening(self) -> None:
        """Send ``x``: the device leaves listening mode and resumes its application."""
        self.link.write(b"x")

    def start_receive(self, timeout: float) -> bool:
        """Send ``f``; True once the ready line (or a standalone ``C`` poll) arrives in time.

        The Device OS 6 answer (``CAN CAN`` + ``Serial/YModem flashing is no longer
        supported``) raises ``DeviceOSTooNewError``; any other cancel its catalogue error.
        """
        self.link.drain_input()
        self.link.write(b"f")
        text = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            event = next_event(self.link, deadline, text, ready=READY_RE)
            check_foreign_input(self.link.name, bytes(text))
            if event in (READY, CRC_POLL):
                return True
            if event == CAN:
                raise cancellation_error(read_device_text(self.link), port=self.link.name)
            if event is None:
                return False
