"""Open a Particle serial port and read it with deadlines, mapping OS failures to the catalogue.

``Link`` is the narrow interface the console and the YMODEM sender talk through: write bytes,
read with a timeout, push bytes back, change the line speed. A vanished port (reset, unplug,
DFU) always surfaces as ``DeviceDisconnectedError``, never as a pyserial traceback.
"""

from __future__ import annotations

import contextlib
import errno
import time
from typing import Any

from zeke.particle.errors import (
    DeviceDisconnectedError,
    NoDeviceError,
    PortAccessError,
    PortBusyError,
)

NEUTRAL_BAUD = 9600  # the console's speed; also the "neutral" rate between magic rates
LISTEN_TRIGGER_BAUD = 28800  # Device OS 0.5-5.x: enter listening mode
DFU_TRIGGER_BAUD = 14400  # resets into the DFU bootloader: zeke never sets it
READ_SLICE_S = 0.05

try:  # pyserial's POSIX backend lets termios.error (not an OSError) escape tcdrain/tcflush
    import termios

    _TERMIOS_ERRORS: tuple[type[Exception], ...] = (termios.error,)
except ImportError:  # pragma: no cover - non-POSIX hosts
    _TERMIOS_ERRORS = ()

UDEV_HINT = (
    "install the zeke udev rules (systemd/udev/50-zeke-particle.rules, done by zeke setup) "
    "and replug"
)

MODEM_MANAGER_HINT = (
    "stop ModemManager (sudo systemctl stop ModemManager) or install the zeke udev rules "
    "(systemd/udev/50-zeke-particle.rules sets ID_MM_DEVICE_IGNORE; done by zeke setup), replug"
)


def modem_manager_running() -> bool:
    """True when a ModemManager process is running (it probes every new ttyACM port)."""
    try:
        import psutil

        return any(
            (proc.info.get("name") or "") == "ModemManager"
            for proc in psutil.process_iter(["name"])
        )
    except Exception:  # process table unreadable: say nothing rather than guess
        return False


def busy_hint() -> str:
    if modem_manager_running():
        return f"ModemManager is running and probes new ports: {MODEM_MANAGER_HINT}"
    return "close serial monitors (screen, minicom, particle serial monitor) and retry"


def _open_error(port: str, err: Exception) -> Exception:
    code = getattr(err, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return NoDeviceError(
            f"{port} does not exist: the device is unplugged, restarting, or in DFU mode "
            "(LED blinking yellow)",
            "run zeke nodes to list devices",
        )
    if code in (errno.EACCES, errno.EPERM):
        return PortAccessError(
            f"Permission denied opening {port}. Add yourself to 'dialout' (or install Particle "
            "udev rules) and replug.",
            f"sudo usermod -aG dialout $USER, log in again; or {UDEV_HINT}",
        )
    if code in (errno.EAGAIN, errno.EBUSY):
        return PortBusyError(
            f"{port} is busy (another program has it open). Close serial monitors; on Linux "
            "check ModemManager.",
            busy_hint(),
        )
    return PortAccessError(f"cannot open {port}: {err}")


class Link:
    """A serial port with deadline reads and a push-back buffer."""

    def __init__(self, serial_port: Any, name: str):
        self._ser = serial_port
        self.name = name
        self._pending = bytearray()
        self.bytes_written = 0
        self.bytes_read = 0

    @classmethod
    def open(cls, port: str, baudrate: int = NEUTRAL_BAUD) -> Link:
        """Open ``port`` at 9600 8N1, no flow control, exclusively; flush stale input."""
        import serial

        try:
            ser = serial.Serial(port, baudrate, timeout=READ_SLICE_S, exclusive=True)
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as err:
            raise _open_error(port, err) from None
        link = cls(ser, port)
        try:
            ser.reset_input_buffer()
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS):
            link.close()
            raise DeviceDisconnectedError(f"{port} vanished while it was being opened") from None
        return link

    def _gone(self, err: Exception) -> DeviceDisconnectedError:
        gone = DeviceDisconnectedError(
            f"the device on {self.name} disconnected ({err})",
            "check the cable and replug; if the LED blinks yellow it is in DFU mode (press RESET)",
        )
        gone.reason = str(err)
        return gone

    def write(self, data: bytes) -> None:
        import serial

        try:
            self._ser.write(data)
            self._ser.flush()
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as err:
            raise self._gone(err) from None
        self.bytes_written += len(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Up to ``max_bytes`` bytes, waiting up to ``timeout`` s for the first (b"": none)."""
        if self._pending:
            out = bytes(self._pending[:max_bytes])
            del self._pending[:max_bytes]
            return out
        import serial

        deadline = time.monotonic() + timeout
        try:
            while True:
                first = self._ser.read(1)
                if first:
                    waiting = min(self._ser.in_waiting, max_bytes - 1)
                    out = first + (self._ser.read(waiting) if waiting > 0 else b"")
                    self.bytes_read += len(out)
                    return out
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as err:
            raise self._gone(err) from None

    def read_byte(self, timeout: float) -> int | None:
        data = self.read(1, timeout)
        return data[0] if data else None

    def unread(self, data: bytes) -> None:
        self._pending[:0] = data

    def read_until_idle(self, idle: float, total: float) -> bytes:
        """Bytes until ``idle`` s pass without one, or ``total`` s in all."""
        out = bytearray()
        deadline = time.monotonic() + total
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out)
            chunk = self.read(4096, min(idle, remaining))
            if not chunk:
                return bytes(out)
            out += chunk

    def drain_input(self) -> None:
        """Drop whatever is buffered (stale replies, log noise)."""
        import serial

        self._pending.clear()
        try:
            self._ser.reset_input_buffer()
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as err:
            raise self._gone(err) from None

    @property
    def baudrate(self) -> int:
        return self._ser.baudrate

    def set_baudrate(self, baudrate: int) -> None:
        """Change the line coding; the device sees it as a CDC SET_LINE_CODING."""
        if baudrate == DFU_TRIGGER_BAUD:
            raise ValueError("14400 baud resets Particle devices into DFU mode; never set it")
        import serial

        try:
            self._ser.baudrate = baudrate
        except (serial.SerialException, OSError, *_TERMIOS_ERRORS) as err:
            raise self._gone(err) from None

    def close(self) -> None:
        # Closing a port whose device vanished may fail; there is nothing left to save.
        with contextlib.suppress(Exception):
            self._ser.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
