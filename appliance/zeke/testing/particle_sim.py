"""A Particle Gen 3 device on a pseudo-terminal: listening-mode console and YMODEM receiver.

It behaves like Device OS as described in ``docs`` (particle-serial spec): states (normal,
listening, ymodem, validating, resetting, dfu), the 28800/14400-baud triggers observed as line
speed changes on the pty (``TCGETS2`` on the master shares the slave's termios), era-specific
replies (1.x hex masks, 2.x-5.x negative codes, 6.x refusal), the device's own image validation,
and a reset as a hang-up followed by re-enumeration on a new pty. Every fault in ``FAULTS`` maps
to one host code path.

Run it standalone to develop against it::

    python -m zeke.testing.particle_sim --platform xenon --device-os 1.5.2 [--fault NAME]

It prints the pty path to pass as ``--port`` and logs what it receives.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pty
import select
import struct
import sys
import termios
import threading
import time
import tty
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from zeke.particle.platforms import (
    MODULE_FUNCTIONS,
    OTA_AREA_BYTES,
    DeviceOSVersion,
    Platform,
    find_slot,
    platform_by_id,
    platform_by_name,
)

TCGETS2 = 0x802C542A  # struct termios2: c_ispeed / c_ospeed are uint32 at offsets 36 / 40
SOH, STX, EOT, ACK, NAK, CAN = 0x01, 0x02, 0x04, 0x06, 0x15, 0x18
CRC_POLL, SPACE = 0x43, 0x20
LISTEN_BAUD, DFU_BAUD = 28800, 14400

# Device timers in seconds at time_scale 1.
NAK_TIMEOUT = 5.0
MAX_ERRORS = 5
RESTART_PAUSE = 1.0
RESET_PAUSE = 0.1
REENUMERATE_DELAY = 1.5
LISTEN_ENTRY_DELAY = 1.5
SLOW_ACK = 60.0

READY_LINE = b"Waiting for the binary file to be sent ... (press 'a' to abort)\r\n"
NO_SERIAL_FLASH = b"Serial/YModem flashing is no longer supported\r\n"
MODEM_MANAGER_BURST = b"AT\rATE0\rAT+GCAP\rATI\r"
NOISE_LINES = (
    b"0000012345 [app] INFO: sensor reading 42\r\n",
    b"0000012391 [comm.protocol] INFO: Cloud connected\r\n",
    b"Connecting to the cloud...\r\n",
    b"0000012502 [system] WARN: clock not synchronised, C\r\n",
    b"q#8!Cz~\r\n",
)

FAULTS: dict[str, str] = {
    "not-listening": "boots running its app (normal mode); the 28800-baud trigger works",
    "trigger-ignored": "boots in normal mode and ignores 28800 baud (the app blocks the system)",
    "no-ready-line": "'f' prints no ready line; the first 'C' comes after the 5 s byte timeout",
    "log-noise": "log lines and garbage in listening mode and between YMODEM replies",
    "resend": "answers block N with 'C' (resend) twice before accepting it",
    "nak": "answers block N with NAK (sequence mismatch)",
    "cancel": "cancels at block N: CAN CAN, then 'Failed to receive the file!'",
    "swallow-block": "loses block N entirely; asks for it with 'C' after 5 s",
    "bad-seq": "block N arrives with a corrupted ~seq byte once",
    "modem-manager": "a second writer sends AT probes at plug-in and at the boundary after block N",
    "slow-final-ack": "validation takes 60 s (NCP-like) before the final ACK",
    "reject-crc": "a payload byte of block N is corrupted in transit: device CRC-32 check fails",
    "reject-platform": "the device's validation reports a platform mismatch",
    "reject-range": "the device's validation reports the address range outside its slot",
    "save-failure": "writing block N to the OTA area fails: 'Failed to save chunk!'",
    "updates-disabled": "the app disabled updates: the header is refused",
    "disconnect-mid-transfer": "USB disconnect (hang-up) at block N",
    "disconnect-after-ack": "resets right after the final ACK, before the 'Restarting' line",
    "dos6-refusal": "'v' reports the configured version but 'f' answers like Device OS 6",
    "protected-silent": "a Device OS 6 Protected Device: listening but no console at all",
}
_BOOT_NORMAL_FAULTS = {"not-listening", "trigger-ignored"}


class State(str, Enum):
    NORMAL = "normal"
    LISTENING = "listening"
    YMODEM = "ymodem"
    VALIDATING = "validating"
    RESETTING = "resetting"
    DFU = "dfu"
    OFF = "off"


class _HangUp(Exception):
    def __init__(self, reason: str, next_state: State | None = None):
        super().__init__(reason)
        self.reason = reason
        self.next_state = next_state


class _Stopped(Exception):
    pass


@dataclass
class Transfer:
    """One YMODEM receive session as the device saw it."""

    frames: list[tuple] = field(default_factory=list)  # ("header", name, size) / ("data", ...)
    result: str = ""
    validation: str = ""

    def count(self, kind: str) -> int:
        return sum(1 for frame in self.frames if frame[0] == kind)


def system_module_version(version: DeviceOSVersion) -> int:
    """The system part's module version (illustrative except the spec's known points)."""
    known = {"0.8.0-rc.27": 326, "1.5.2": 1512}
    return known.get(str(version), version.major * 1000 + version.minor * 100 + version.patch)


def validate_on_device(
    image: bytes, platform_id: int, device_os: DeviceOSVersion, force_fail: int = 0
) -> str | None:
    """Device OS's checks on a received image; None when valid, else the reply's code text.

    Mirrors ``ota_module.cpp``: find the prefix (offset 0, then 0x200), look up the slot, then
    integrity (CRC-32 of [start, end) against the big-endian word at ``end``), range and
    platform. 1.x prints (checks performed XOR passed) in hex; 2.x-5.x the first failure's
    system error code in the order integrity, dependencies, range, platform.
    """
    integrity, deps, range_, platform = 0x02, 0x04, 0x08, 0x10
    info = None
    for offset in (0, 0x200):
        if len(image) >= offset + 24:
            fields = struct.unpack_from("<IIBBHHBBBBHBBH", image, offset)
            start, end, mcu, _flags, _ver, pid, func, index = fields[:8]
            if start < end and func in MODULE_FUNCTIONS and func != 0:
                info = (start, end, mcu, pid, func, index)
                break
    if info is None:
        return "0x5e" if device_os.era == "1.x" else "-1370"
    start, end, mcu, pid, func, index = info
    slot = find_slot(platform_id, func, index, mcu, device_os)
    if slot is None:
        return "0x5e" if device_os.era == "1.x" else "-1350"
    checked = integrity | deps | range_ | platform
    passed = deps  # user parts: dependencies are optional at this point
    length = end - start
    if length + 4 <= len(image):
        stored = struct.unpack_from(">I", image, length)[0]
        if zlib.crc32(image[:length]) & 0xFFFFFFFF == stored:
            passed |= integrity
    if slot.fits(start, end):
        passed |= range_
    if pid == platform_id:
        passed |= platform
    passed &= ~force_fail
    failed = checked ^ passed
    if not failed:
        return None
    if device_os.era == "1.x":
        return f"0x{failed:x}"
    for bit, code in ((integrity, -1330), (deps, -1340), (range_, -1350), (platform, -1360)):
        if failed & bit:
            return str(code)
    return "-1320"


class ParticleSimulator:
    """One simulated device. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        platform: str | int = "xenon",
        device_os: str = "1.5.2",
        *,
        fault: str | None = None,
        fault_block: int = 3,
        device_id: str | None = None,
        listening: bool = True,
        setup_done: bool = True,
        time_scale: float = 1.0,
        link_path: str | Path | None = None,
        has_otp: bool = True,
        id_delay: float = 0.0,
        strict_crc: bool = False,
        reenumerate_delay: float = REENUMERATE_DELAY,
        log: Callable[[str], None] | None = None,
    ):
        if isinstance(platform, int):
            found = platform_by_id(platform)
        else:
            found = platform_by_name(platform)
        if found is None:
            raise ValueError(f"unknown platform {platform!r}")
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.platform: Platform = found
        self.device_os = DeviceOSVersion.parse(device_os)
        self.fault = fault
        self.fault_block = fault_block
        seed = hashlib.sha256(f"{self.platform.name}-{device_os}-{fault}".encode()).hexdigest()
        self.device_id = (device_id or "e00fce68" + seed[:16]).lower()
        self.setup_done = setup_done
        self.time_scale = time_scale
        self.link_path = Path(link_path) if link_path else None
        self.has_otp = has_otp
        self.id_delay = id_delay
        self.strict_crc = strict_crc
        self.reenumerate_delay = reenumerate_delay
        self._log_sink = log
        self.protected = fault == "protected-silent"

        self.state = State.OFF
        self.events: list[str] = []
        self.transfers: list[Transfer] = []
        self.outputs: list[bytearray] = []  # what the device wrote, one buffer per boot
        self.line_speeds: list[int] = []  # every speed change the host made
        self.boots = 0
        self.app_image: bytes | None = None
        self.pty_path: str | None = None
        self._received = 0
        self._injected = 0
        self._fault_hits: dict[str, int] = {}
        self._boot_state = (
            State.NORMAL if fault in _BOOT_NORMAL_FAULTS or not listening else (State.LISTENING)
        )
        self._master = self._slave = -1
        self._speed = 0
        self._inbuf = bytearray()
        self._listen_at: float | None = None
        self._next_noise = 0.0
        self._noise_index = 0
        self._attached = threading.Event()
        self._stop = threading.Event()
        self._reset_requested = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # ----------------------------------------------------------------- public API

    def start(self, timeout: float = 5.0) -> ParticleSimulator:
        self._thread = threading.Thread(target=self._main, name="particle-sim", daemon=True)
        self._thread.start()
        if not self._attached.wait(timeout):
            raise RuntimeError("simulator did not attach a pty")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ParticleSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> str | None:
        """The path a host should open: the stable link if configured, else the pty."""
        if self.link_path is not None:
            return str(self.link_path)
        return self.pty_path

    @property
    def received(self) -> int:
        """Bytes the host wrote to the device (second-writer bytes not counted)."""
        return self._received - self._injected

    @property
    def output(self) -> bytes:
        """Everything the device wrote during its current (last) boot."""
        return bytes(self.outputs[-1]) if self.outputs else b""

    def comports(self) -> list:
        """What pyserial's ``comports()`` would list for this device right now."""
        from serial.tools.list_ports_common import ListPortInfo

        if not self._attached.is_set() or self.port is None:
            return []
        info = ListPortInfo(self.port, skip_link_detection=True)
        info.vid, info.pid = 0x2B04, self.platform.serial_pid
        info.serial_number = self.device_id
        info.manufacturer = "Particle"
        info.product = f"{self.platform.title} CDC Mode"
        info.interface = f"{self.platform.title} Serial"
        info.location = "1-1.2:1.0"
        info.apply_usb_info()
        return [info]

    def press_reset(self) -> None:
        """The RESET button: the device drops off USB and re-enumerates (same firmware)."""
        self._reset_requested.set()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # ----------------------------------------------------------------- lifecycle

    def _t(self, seconds: float) -> float:
        return seconds * self.time_scale

    def _log(self, message: str) -> None:
        self.events.append(message)
        if self._log_sink is not None:
            self._log_sink(message)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self._log(f"state {self.state.value} -> {state.value}")
            self.state = state

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                self._attach()
                try:
                    self._serve()
                except _HangUp as hang_up:
                    self._log(f"hang-up: {hang_up.reason}")
                    self._detach()
                    if hang_up.reason == "dfu":
                        self._set_state(State.DFU)
                        self._stop.wait()
                        break
                    self._set_state(State.RESETTING)
                    self._boot_state = hang_up.next_state or (
                        State.NORMAL if self.setup_done else State.LISTENING
                    )
                    if self._stop.wait(self._t(self.reenumerate_delay)):
                        break
        except _Stopped:
            pass
        except BaseException as err:  # surfaced to tests through .error
            self.error = err
            self._log(f"simulator crashed: {err!r}")
            raise
        finally:
            self._detach()
            self.state = State.OFF
            self._attached.set()  # never leave start() waiting

    def _attach(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self._speed = self._line_speed()
        self._inbuf.clear()
        self.boots += 1
        self.outputs.append(bytearray())
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self.pty_path, tmp)
            os.replace(tmp, self.link_path)
        self._set_state(self._boot_state)
        self._log(f"attached on {self.pty_path} (boot {self.boots}, {self.state.value})")
        if self.fault == "modem-manager":
            self._second_writer_burst()
        self._attached.set()

    def _detach(self) -> None:
        self._attached.clear()
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    # ----------------------------------------------------------------- I/O

    def _line_speed(self) -> int:
        buf = bytearray(44)
        fcntl.ioctl(self._master, TCGETS2, buf)
        return struct.unpack_from("<I", buf, 40)[0]

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` (20 ms slices) for input; watch the line speed and timers."""
        if self._stop.is_set():
            raise _Stopped
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            raise _HangUp("RESET button")
        ready, _, _ = select.select([self._master], [], [], max(0.0, min(timeout, 0.02)))
        if ready:
            try:
                data = os.read(self._master, 65536)
            except BlockingIOError:
                data = b""
            except OSError as err:  # EIO: no slave open (cannot happen while we hold one)
                if err.errno != errno.EIO:
                    raise
                data = b""
            if data:
                self._inbuf += data
                self._received += len(data)
        speed = self._line_speed()
        if speed != self._speed:
            self._speed = speed
            self.line_speeds.append(speed)
            self._log(f"line speed set to {speed} baud")
            self._on_line_speed(speed)
        if self._listen_at is not None and time.monotonic() >= self._listen_at:
            self._listen_at = None
            if self.state == State.NORMAL:
                self._set_state(State.LISTENING)
        if (
            self.fault == "log-noise"
            and self.state == State.LISTENING
            and time.monotonic() >= self._next_noise
        ):
            self._next_noise = time.monotonic() + 0.15
            self._noise()

    def _on_line_speed(self, speed: int) -> None:
        if speed == DFU_BAUD:
            raise _HangUp("dfu")
        if speed != LISTEN_BAUD or self.state != State.NORMAL:
            return
        if not self.device_os.serial_flashing or self.protected:
            self._log("28800 baud ignored (no listening trigger in this Device OS)")
        elif self.fault == "trigger-ignored":
            self._log("28800 baud ignored (the application blocks the system)")
        else:
            self._listen_at = time.monotonic() + self._t(LISTEN_ENTRY_DELAY)

    def _read_byte(self, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._inbuf:
            remaining = 0.02 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(remaining)
        byte = self._inbuf[0]
        del self._inbuf[0]
        return byte

    def _read_exact(self, count: int, gap: float) -> bytes | None:
        """``count`` bytes, each within ``gap`` s of the previous; None on a gap."""
        out = bytearray()
        while len(out) < count:
            if self._inbuf:
                take = min(count - len(out), len(self._inbuf))
                out += self._inbuf[:take]
                del self._inbuf[:take]
                continue
            deadline = time.monotonic() + gap
            while not self._inbuf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._pump(remaining)
        return bytes(out)

    def _write(self, data: bytes, patience: float = 1.0) -> None:
        """Write to the host; dropped after ``patience`` s if nobody drains the port."""
        view = memoryview(data)
        deadline = time.monotonic() + patience
        while view:
            try:
                written = os.write(self._master, view)
                self.outputs[-1] += view[:written]
                view = view[written:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._log(f"output dropped ({len(view)} bytes): nobody reads the port")
                    return
                select.select([], [self._master], [], 0.01)
            except OSError:
                return

    def _await_host_read(self, limit: float = 1.0) -> None:
        """Let the host consume what was sent before a reset (USB delivers it first).

        Closing a pty master discards unread input on the slave, while a real device's last
        bytes reach the host before it drops off the bus.
        """
        started = time.monotonic()
        seen = False
        while time.monotonic() - started < limit:
            queued = bytearray(4)
            fcntl.ioctl(self._slave, termios.FIONREAD, queued)
            if struct.unpack("i", queued)[0] > 0:
                seen = True
            elif seen or time.monotonic() - started > limit / 2:
                return  # read by the host (or never delivered to the queue we can see)
            self._pump(0.005)

    def _sleep(self, seconds: float) -> None:
        """Pass time while still watching the line (a reset can interrupt anything)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())

    def _noise(self) -> None:
        self._write(NOISE_LINES[self._noise_index % len(NOISE_LINES)], patience=0.0)
        self._noise_index += 1

    def _hit(self, name: str) -> int:
        self._fault_hits[name] = self._fault_hits.get(name, 0) + 1
        return self._fault_hits[name]

    def _second_writer_burst(self) -> None:
        """ModemManager-style AT probe written through a second open of the tty."""
        if self.pty_path is None:
            return
        fd = os.open(self.pty_path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, MODEM_MANAGER_BURST)
        finally:
            os.close(fd)
        self._injected += len(MODEM_MANAGER_BURST)
        self._log(f"second writer sent {MODEM_MANAGER_BURST!r}")
        wanted = len(self._inbuf) + len(MODEM_MANAGER_BURST)
        deadline = time.monotonic() + 2.0
        while len(self._inbuf) < wanted and time.monotonic() < deadline:
            self._pump(0.02)

    # ----------------------------------------------------------------- states

    def _serve(self) -> None:
        while True:
            if self.state == State.LISTENING:
                self._console_step()
            else:
                byte = self._read_byte(0.05)  # the app ignores serial input
                if byte is not None and self.state == State.LISTENING:
                    self._inbuf[0:0] = bytes([byte])  # arrived as listening mode began
                elif byte is not None:
                    self._log(f"rx 0x{byte:02x} ignored ({self.state.value} mode)")

    def _console_step(self) -> None:
        byte = self._read_byte(0.05)
        if byte is None:
            return
        if self.protected:
            self._log(f"rx 0x{byte:02x} ignored (protected device: no console)")
            return
        if byte in (SOH, STX) and self.device_os.serial_flashing:
            self._inbuf[0:0] = bytes([byte])  # shortcut: the receiver reads it
            self._log("block start in listening mode: straight into the YMODEM receiver")
            self._receive()
            return
        command = chr(byte)
        handler = {
            "v": self._cmd_version,
            "i": self._cmd_identity,
            "s": self._cmd_modules,
            "m": self._cmd_mac,
            "c": self._cmd_claimed,
            "C": self._cmd_claim_code,
            "w": self._cmd_wifi,
            "x": self._cmd_exit,
            "d": self._cmd_diagnostics,
            "L": self._cmd_listen_reset,
            "f": self._cmd_flash,
        }.get(command)
        if handler is None:
            self._log(f"rx 0x{byte:02x} ignored")
            return
        self._log(f"rx command {command!r}")
        if self.fault == "log-noise":
            self._noise()
        handler()

    def _read_line(self) -> bytes:
        line = bytearray()
        while True:
            byte = self._read_byte(None)
            if byte in (0x0D, 0x0A):
                return bytes(line)
            if byte is not None:
                line.append(byte)

    def _cmd_version(self) -> None:
        self._write(f"system firmware version: {self.device_os}\n\r\n".encode())

    def _cmd_identity(self) -> None:
        if self.id_delay:
            self._sleep(self._t(self.id_delay))
        cellular = self.platform.name in ("boron", "bsom", "b5som", "electron", "tracker")
        if not (self.has_otp or cellular):
            self._write(f"Your device id is {self.device_id}\r\n".encode())
            return
        lines = [f"Device ID: {self.device_id}"]
        if self.has_otp:
            lines += ["Device Secret: SIMSECRET123456", f"Serial Number: SIM{self.device_id[-12:]}"]
        if cellular:
            lines += ["IMEI: 352753090000001", "ICCID: 89014103270000000001"]
        self._write("".join(f"{line}\r\n" for line in lines).encode())

    def _module_json(self) -> str:
        system_version = system_module_version(self.device_os)

        def deps(items: list[tuple[str, str, int]]) -> str:
            return ",".join(f'{{"f":"{f}","n":"{n}","v":{v},"_":""}}' for f, n, v in items)

        modules = [
            '{"s":49152,"l":"m","vc":30,"vv":30,"f":"b","n":"0","v":502,"d":[]}',
            f'{{"s":671744,"l":"m","vc":30,"vv":30,"f":"s","n":"1","v":{system_version},'
            f'"d":[{deps([("b", "0", 502), ("a", "0", 202)])}]}}',
        ]
        if self.app_image is not None:
            sha = hashlib.sha256(self.app_image[:-38]).hexdigest()
            version, index = struct.unpack_from("<H", self.app_image, 10)[0], self.app_image[15]
            slot = 262144 if index == 2 else 131072
            modules.append(
                f'{{"s":{slot},"l":"m","vc":30,"vv":30,"u":"{sha}","f":"u","n":"{index}",'
                f'"v":{version},"d":[{deps([("s", "1", system_version)])}]}}'
            )
        return f'{{"p":{self.platform.id},"m":[{",".join(modules)}]}}'

    def _cmd_modules(self) -> None:
        self._write(self._module_json().encode() + b"\r\n")

    def _cmd_mac(self) -> None:
        mac = ":".join(self.device_id[i : i + 2] for i in range(12, 24, 2))
        self._write(f"Your device MAC address is\r\n{mac}\r\n".encode())

    def _cmd_claimed(self) -> None:
        self._write(b"Device claimed: no\r\n")

    def _cmd_claim_code(self) -> None:
        self._write(b"Enter 63-digit claim code: ")
        code = self._read_line()
        if len(code) == 63:
            self._write(b"\r\nClaim code set to: " + code + b"\r\n")
        else:
            self._write(
                b"\r\nSorry, claim code is not 63 characters long. Claim code unchanged.\r\n"
            )

    def _cmd_wifi(self) -> None:
        if self.platform.name != "argon":
            return
        self._write(b"SSID: ")
        self._read_line()
        self._write(b"\r\nThanks! Wait while I save those credentials...\r\n")

    def _cmd_exit(self) -> None:
        self._set_state(State.NORMAL)

    def _cmd_diagnostics(self) -> None:
        self._write(json.dumps({"uptime": int(time.monotonic())}).encode() + b"\r\n")

    def _cmd_listen_reset(self) -> None:
        raise _HangUp("'L': reset into listening mode", State.LISTENING)

    def _cmd_flash(self) -> None:
        if not self.device_os.serial_flashing or self.fault == "dos6-refusal":
            self._write(bytes([CAN, CAN]) + NO_SERIAL_FLASH)
            return
        if self.fault != "no-ready-line":
            self._write(READY_LINE)
        if self.fault == "log-noise":
            self._noise()
        self._receive()

    # ----------------------------------------------------------------- YMODEM receiver

    def _receive(self) -> None:
        """The receiver plus the outer success/failure path of ``system_ymodem.cpp``."""
        self._set_state(State.YMODEM)
        transfer = Transfer()
        self.transfers.append(transfer)
        result, image, size = self._ymodem_session(transfer)
        transfer.result = result
        if result == "ok" and size > 0:
            self._finish(transfer, image[:size] if len(image) >= size else image, size)
            return
        message = {
            "aborted": b"Aborted by user.\r\n",
            "refused": b"The file size is higher than the allowed space memory!\r\n",
            "save": b"Failed to save chunk!\r\n",
        }.get(result, b"Failed to receive the file!\r\n")
        self._write(bytes([CAN, CAN]) + message)
        self._log(f"receive failed ({result}): {message.strip().decode()}")
        self._set_state(State.LISTENING)

    def _ymodem_session(self, transfer: Transfer) -> tuple[str, bytearray, int]:
        nak_timeout = self._t(NAK_TIMEOUT)
        expected = errors = size = 0
        image = bytearray()
        n = self.fault_block

        def bad_packet(why: str) -> bool:
            nonlocal errors
            errors += 1
            self._log(f"bad packet ({why}); error {errors}: sending 'C'")
            self._write(bytes([CRC_POLL]))
            if errors > MAX_ERRORS:
                self._write(bytes([CAN, CAN]))
                return True
            return False

        while True:
            first = self._read_byte(nak_timeout)
            if first in (SOH, STX):
                length = 128 if first == SOH else 1024
                rest = self._read_exact(length + 4, nak_timeout)
                if rest is None:
                    if bad_packet("timeout inside a block"):
                        return "failed", image, size
                    continue
                block = bytearray(rest)
                seq, payload = block[0], bytes(block[2 : 2 + length])
                is_block_n = expected == n and seq == n & 0xFF
                if is_block_n and self.fault == "swallow-block" and self._hit("swallow") == 1:
                    self._log(f"block {seq} swallowed")
                    continue
                if is_block_n and self.fault == "bad-seq" and self._hit("bad-seq") == 1:
                    block[1] ^= 0x5A
                if block[0] != block[1] ^ 0xFF:
                    if bad_packet(f"seq 0x{block[0]:02x} vs ~seq 0x{block[1]:02x}"):
                        return "failed", image, size
                    continue
                if self.strict_crc:
                    crc = int.from_bytes(block[2 + length :], "big")
                    if binascii.crc_hqx(payload, 0) != crc:
                        if bad_packet("CRC-16 mismatch"):
                            return "failed", image, size
                        continue
                if is_block_n and self.fault == "resend" and self._hit("resend") <= 2:
                    if bad_packet(f"fault: resend block {seq}"):
                        return "failed", image, size
                    continue
                errors = 0
                if seq != expected & 0xFF:
                    self._log(f"block seq {seq} but expected {expected & 0xFF}: NAK")
                    self._write(bytes([NAK]))
                    continue
                if expected == 0:
                    if payload[0] == 0:
                        transfer.frames.append(("end",))
                        self._log("end-of-batch block: validating")
                        return "ok", image, size
                    name, _, rest_text = payload.partition(b"\0")
                    size = int(rest_text.split(b" ", 1)[0] or b"0")
                    transfer.frames.append(("header", name.decode("ascii", "replace"), size))
                    self._log(f"rx header: name={name.decode('ascii', 'replace')} size={size}")
                    if self.fault == "updates-disabled" or size > OTA_AREA_BYTES:
                        self._write(bytes([CAN, CAN]))
                        return "refused", image, size
                    image = bytearray()
                    self._write(bytes([ACK, CRC_POLL]))
                else:
                    if is_block_n and self.fault == "nak" and self._hit("nak") == 1:
                        self._write(bytes([NAK]))
                        continue
                    if is_block_n and self.fault == "cancel":
                        self._write(bytes([CAN, CAN]))
                        return "failed", image, size
                    if is_block_n and self.fault == "save-failure":
                        self._write(bytes([CAN, CAN]))
                        return "save", image, size
                    if is_block_n and self.fault == "disconnect-mid-transfer":
                        raise _HangUp(f"USB disconnect at block {seq}")
                    if is_block_n and self.fault == "reject-crc":
                        payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
                    image += payload
                    transfer.frames.append(("data", seq, length))
                    self._log(f"rx block {expected} (seq {seq}, {length} bytes)")
                    if self.fault == "log-noise" and expected % 4 == 1:
                        self._noise()
                    if is_block_n and self.fault == "modem-manager":
                        self._second_writer_burst()
                    self._write(bytes([ACK]))
                expected += 1
            elif first == EOT:
                transfer.frames.append(("eot",))
                self._write(bytes([ACK]))
                expected = 0
            elif first == CAN:
                second = self._read_byte(nak_timeout)
                if second == CAN:
                    transfer.frames.append(("cancel",))
                    self._write(bytes([ACK]))
                    return "nothing", image, size
                if bad_packet("single CAN"):
                    return "failed", image, size
            elif first in (0x41, 0x61):
                transfer.frames.append(("abort",))
                self._write(bytes([CAN, CAN]))
                return "aborted", image, size
            elif first == SPACE:
                self._write(bytes([ACK]))
            else:
                why = "timeout" if first is None else f"unexpected 0x{first:02x}"
                if bad_packet(why):
                    return "failed", image, size

    def _finish(self, transfer: Transfer, image: bytes, size: int) -> None:
        self._set_state(State.VALIDATING)
        if self.fault == "slow-final-ack":
            self._sleep(self._t(SLOW_ACK))
        force = {"reject-platform": 0x10, "reject-range": 0x08}.get(self.fault or "", 0)
        verdict = validate_on_device(image, self.platform.id, self.device_os, force)
        if verdict is not None:
            transfer.validation = verdict
            self._log(f"validation failed: {verdict}")
            self._write(bytes([CAN, CAN]) + f"Validation failed: {verdict}\r\n".encode())
            self._set_state(State.LISTENING)
            return
        transfer.validation = "ok"
        self.app_image = bytes(image)
        self._write(bytes([ACK]))
        if self.fault == "disconnect-after-ack":
            self._await_host_read()
            raise _HangUp("reset right after the final ACK")
        name = next((f[1] for f in transfer.frames if f[0] == "header"), "")
        self._write(
            f"\r\nDownloaded file successfully!\r\nName: {name}\r\nSize: {size} bytes\r\n".encode()
        )
        self._sleep(self._t(RESTART_PAUSE))
        self._write(b"Restarting system to apply firmware update...\r\n")
        self._sleep(self._t(RESET_PAUSE))
        self._await_host_read()
        self._set_state(State.RESETTING)
        raise _HangUp("restart to apply the firmware update")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zeke.testing.particle_sim",
        description="Simulated Particle device on a pty (listening-mode console + YMODEM).",
    )
    parser.add_argument("--platform", default="xenon", help="argon, boron, xenon, ... or an id")
    parser.add_argument("--device-os", default="1.5.2", help="Device OS version, e.g. 1.5.2")
    parser.add_argument("--fault", choices=sorted(FAULTS), help="inject one fault")
    parser.add_argument("--fault-block", type=int, default=3, help="block N for block faults")
    parser.add_argument("--normal", action="store_true", help="boot running the app")
    parser.add_argument("--setup-not-done", action="store_true", help="reboot into listening")
    parser.add_argument("--time-scale", type=float, default=1.0, help="scale device timers")
    parser.add_argument("--link", help="keep a stable symlink to the current pty here")
    parser.add_argument("--device-id", help="24 hex digits")
    parser.add_argument("--list-faults", action="store_true", help="describe the faults")
    args = parser.parse_args(argv)
    if args.list_faults:
        for name, text in FAULTS.items():
            print(f"{name:24} {text}")
        return 0

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    try:
        sim = ParticleSimulator(
            args.platform,
            args.device_os,
            fault=args.fault,
            fault_block=args.fault_block,
            device_id=args.device_id,
            listening=not args.normal,
            setup_done=not args.setup_not_done,
            time_scale=args.time_scale,
            link_path=args.link,
            log=log,
        )
    except ValueError as err:
        parser.error(str(err))
    with sim:
        print(sim.port, flush=True)
        log(
            f"simulated {sim.platform.title} (id {sim.platform.id}), Device OS {sim.device_os}, "
            f"device id {sim.device_id}; use --port {sim.port}; Ctrl-C to stop"
        )
        try:
            while sim.state != State.OFF:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
