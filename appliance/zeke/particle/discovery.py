"""Find Particle devices on USB serial, and notice ones sitting in DFU mode.

Ports come from a ``comports`` callable (pyserial's ``list_ports.comports`` by default) so tests
and the simulator can inject devices: pyserial never lists pseudo-terminals. Matching follows
the Particle CLI: VID 0x2B04 with PID 0xC0xx (platform = PID & 0xFF), then a manufacturer of
"Particle"/"Spark"; unidentified ``ttyACM`` ports are reported, never silently used.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeke.particle.errors import AmbiguousDeviceError, NoDeviceError, SerialFlashUnsupportedError
from zeke.particle.platforms import (
    CORE_SERIAL_PID,
    CORE_VID,
    DFU_PID_BASE,
    PARTICLE_VID,
    SERIAL_PID_BASE,
    Platform,
    platform_by_id,
)

Comports = Callable[[], Iterable[Any]]
HEX24_RE = re.compile(r"[0-9A-Fa-f]{24}")
UNKNOWN_PORT_RE = re.compile(r"/dev/(ttyACM\d+|cuaU\d+)$")


def system_comports() -> list[Any]:
    """The host's serial ports as pyserial sees them."""
    from serial.tools import list_ports

    return list(list_ports.comports())


@dataclass(frozen=True)
class ParticlePort:
    """A serial port that is (or may be) a Particle device."""

    device: str
    platform_id: int | None
    device_id: str | None
    product: str | None = None
    vid: int | None = None
    pid: int | None = None

    @property
    def platform(self) -> Platform | None:
        return platform_by_id(self.platform_id) if self.platform_id is not None else None

    def describe(self) -> str:
        what = self.platform.title if self.platform else "unknown Particle device"
        ident = f", device id {self.device_id}" if self.device_id else ""
        return f"{self.device} ({what}{ident})"

    def to_json(self) -> dict:
        return {
            "port": self.device,
            "platform": self.platform.name if self.platform else None,
            "platform_id": self.platform_id,
            "device_id": self.device_id,
            "usb": {
                "vid": f"{self.vid:04x}" if self.vid is not None else None,
                "pid": f"{self.pid:04x}" if self.pid is not None else None,
                "product": self.product,
            },
        }


def device_id_from_serial(serial_number: str | None) -> str | None:
    """The 24-hex device id from a USB serial number (compared lower-case)."""
    if not serial_number:
        return None
    match = HEX24_RE.search(serial_number)
    return match.group(0).lower() if match else None


def classify(info: Any) -> ParticlePort | None:
    """A ``ParticlePort`` for a pyserial ``ListPortInfo`` that looks like Particle, else None."""
    vid, pid = getattr(info, "vid", None), getattr(info, "pid", None)
    device_id = device_id_from_serial(getattr(info, "serial_number", None))
    product = getattr(info, "product", None)
    if vid == PARTICLE_VID and pid is not None and (pid & 0xFF00) == SERIAL_PID_BASE:
        return ParticlePort(info.device, pid & 0xFF, device_id, product, vid, pid)
    if vid == CORE_VID and pid == CORE_SERIAL_PID:
        return ParticlePort(info.device, 0, device_id, product, vid, pid)
    manufacturer = (getattr(info, "manufacturer", None) or "").lower()
    if "particle" in manufacturer or "spark" in manufacturer:
        return ParticlePort(info.device, None, device_id, product, vid, pid)
    return None


def scan(comports: Comports | None = None) -> tuple[list[ParticlePort], list[str]]:
    """(Particle ports, unidentified ttyACM ports)."""
    found: list[ParticlePort] = []
    unknown: list[str] = []
    for info in (comports or system_comports)():
        port = classify(info)
        if port is not None:
            found.append(port)
        elif UNKNOWN_PORT_RE.search(info.device) and getattr(info, "vid", None) is None:
            unknown.append(info.device)
    found.sort(key=lambda p: p.device)
    return found, sorted(unknown)


def find_dfu_devices(sysfs_root: Path = Path("/sys/bus/usb/devices")) -> list[tuple[str, int]]:
    """Particle devices in DFU mode (no serial port): (``vid:pid``, platform id) from sysfs."""
    found = []
    try:
        entries = sorted(sysfs_root.iterdir())
    except OSError:
        return []
    for entry in entries:
        try:
            vid = int((entry / "idVendor").read_text().strip(), 16)
            pid = int((entry / "idProduct").read_text().strip(), 16)
        except (OSError, ValueError):
            continue
        if vid == PARTICLE_VID and (pid & 0xFF00) == DFU_PID_BASE:
            found.append((f"{vid:04x}:{pid:04x}", pid & 0xFF))
    return found


def same_port(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def select_port(
    port: str | None,
    comports: Comports | None = None,
    sysfs_root: Path | None = None,
) -> ParticlePort:
    """The one device to talk to: ``--port`` if given, else the only Particle device."""
    found, unknown = scan(comports)
    if port:
        for candidate in found:
            if same_port(candidate.device, port):
                chosen = candidate
                break
        else:
            chosen = ParticlePort(port, None, None)
    elif len(found) == 1:
        chosen = found[0]
    elif len(found) > 1:
        listing = "; ".join(p.describe() for p in found)
        raise AmbiguousDeviceError(
            f"{len(found)} Particle devices found: {listing}",
            "choose one with --port",
        )
    else:
        dfu = find_dfu_devices(sysfs_root) if sysfs_root else find_dfu_devices()
        if dfu:
            ids = ", ".join(vidpid for vidpid, _ in dfu)
            raise NoDeviceError(
                f"a Particle device is in DFU mode ({ids}): it has no serial port",
                "reset it (RESET button) so it runs normally, then hold MODE ~3 s for listening "
                "mode",
            )
        hint = "plug the device in with a data cable; if it blinks yellow, press RESET"
        if unknown:
            hint = f"unidentified serial ports: {', '.join(unknown)}; pass one with --port"
        raise NoDeviceError(
            "No Particle device found on USB serial (looked for VID 2B04, PID C0xx). If the "
            "LED blinks yellow the device is in DFU mode.",
            hint,
        )
    if chosen.platform is not None and not chosen.platform.serial_flash:
        raise SerialFlashUnsupportedError(
            f"serial flashing is not supported on the {chosen.platform.title}",
            "use DFU (particle flash --local)",
        )
    return chosen


def wait_for_port(
    device_id: str | None,
    port: str,
    comports: Comports | None,
    deadline: float,
    poll: float = 0.1,
) -> str | None:
    """After a reset: the port path the device re-enumerated on, or None by ``deadline``.

    Matches by device id (USB serial number) when it is known and listed; otherwise waits for
    the old path (or the symlink pointing at it) to exist again.
    """
    while time.monotonic() < deadline:
        found, _ = scan(comports)
        if device_id:
            for candidate in found:
                if candidate.device_id == device_id:
                    return candidate.device
        listed = any(same_port(p.device, port) for p in found)
        if (not device_id or not found) and (listed or not found) and os.path.exists(port):
            return port
        time.sleep(poll)
    return None
