"""The `flash-node` flow: validate, find, check, transfer, wait for the node to come back.

Order matters and is the point of this module: the file is validated before any port is
opened; the platform is checked from the USB PID before a byte is sent; Device OS 6+ is
refused before ``f``. Every phase has its own timeout (``FlashTimeouts``) and its own catalogue
error, so a fault ends in a clear message within that phase's budget, never a hang.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from zeke.errors import UsageError, ZekeError
from zeke.particle.console import ListeningConsole
from zeke.particle.discovery import Comports, select_port, wait_for_port
from zeke.particle.errors import (
    DeviceDisconnectedError,
    DeviceOSTooNewError,
    NotListeningError,
    ParticleError,
    PhaseTimeoutError,
)
from zeke.particle.firmware import FirmwareImage, check_for_device, check_platform, load_firmware
from zeke.particle.platforms import BROKEN_YMODEM_RELEASES, DeviceOSVersion, platform_label
from zeke.particle.port import Link
from zeke.particle.ymodem import YModemSender, YModemTimeouts

TIMEOUT_SCALE_ENV = "ZEKE_PARTICLE_TIMEOUT_SCALE"
SIZE_RE = re.compile(rb"Size: (\d+) bytes")


@dataclass(frozen=True)
class FlashTimeouts:
    """Seconds allowed per phase (defaults follow the Particle CLI and the device's timers)."""

    probe: float = 2.0  # answer to `v` (the CLI's console timeout)
    listen: float = 10.0  # entering listening mode after the 28800 trigger
    ready: float = 10.0  # ready line after `f` (a Xenon can take ~6 s)
    header: float = 10.0  # ACK of the header block
    block: float = 10.0  # ACK of each data block (the device itself gives up after 5 s)
    eot: float = 10.0  # ACK of EOT
    validation: float = 90.0  # ACK of the end-of-batch block (NCP-sized modules need long)
    restart: float = 5.0  # "Restarting ..." line and the USB hang-up after the final ACK
    reenumerate: float = 20.0  # the node back on USB and answering again
    console: float = 20.0  # `i` and `s` (an LTE modem may need ~18 s to power up)

    def scaled(self, factor: float) -> FlashTimeouts:
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})

    @classmethod
    def from_env(cls) -> FlashTimeouts:
        """Defaults multiplied by ``$ZEKE_PARTICLE_TIMEOUT_SCALE`` (slow hosts or devices)."""
        raw = os.environ.get(TIMEOUT_SCALE_ENV)
        if not raw:
            return cls()
        try:
            factor = float(raw)
        except ValueError:
            factor = 0.0
        if not 0.01 <= factor <= 100:
            raise UsageError(f"{TIMEOUT_SCALE_ENV}={raw!r} is not a number between 0.01 and 100")
        return cls().scaled(factor)


@dataclass
class DeviceStatus:
    """What the flow learned about the device."""

    port: str
    platform_id: int | None
    device_id: str | None
    mode: str  # "listening", "normal" or "unknown"
    device_os: str | None = None

    def to_json(self) -> dict:
        return {
            "port": self.port,
            "platform_id": self.platform_id,
            "device_id": self.device_id,
            "mode": self.mode,
            "device_os": self.device_os,
        }


@dataclass
class FlashResult:
    image: FirmwareImage
    before: DeviceStatus
    after: DeviceStatus | None = None
    dry_run: bool = False
    block_size: int = 1024
    data_blocks: int = 0
    resends: int = 0
    noise_bytes: int = 0  # stray text (log lines) skipped between protocol replies
    reported_size: int | None = None
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float | None:
        seconds = self.phases.get("data")
        return self.image.size / seconds if seconds else None


def dfu_hint(image: FirmwareImage | None, platform_id: int | None) -> str:
    """The DFU way in, with the exact dfu-util command when dfu-util is installed."""
    manual = (
        "put the device in DFU mode (hold MODE, tap RESET, release MODE when the LED blinks yellow)"
    )
    if shutil.which("dfu-util") and image is not None and platform_id is not None:
        return (
            f"{manual}, then run: dfu-util -d 2b04:{0xD000 | platform_id:04x} -a 0 "
            f"-s 0x{image.info.start:08x}:leave -D {image.name}"
        )
    return f"{manual} and flash with dfu-util (apt install dfu-util) or particle flash --local"


Reporter = Callable[[str], None]


def _noop(_: str) -> None:
    pass


class _Phase:
    """Records how long each phase took."""

    def __init__(self, phases: dict[str, float]):
        self.phases = phases
        self._name: str | None = None
        self._start = 0.0

    def start(self, name: str) -> None:
        self.stop()
        self._name, self._start = name, time.monotonic()

    def stop(self) -> None:
        if self._name is not None:
            self.phases[self._name] = time.monotonic() - self._start
            self._name = None


def _read_version(console: ListeningConsole, allow_trigger: bool, listen_timeout: float) -> tuple:
    """(version or None, whether the 28800-baud trigger was sent)."""
    version = console.probe_version()
    if version is None and allow_trigger:
        return console.enter_listening(listen_timeout), True
    return version, False


def flash_node(
    firmware: str | Path,
    *,
    port: str | None = None,
    enter_listening: bool = False,
    block_size: int = 1024,
    dry_run: bool = False,
    confirm: Callable[[FlashResult], bool] | None = None,
    comports: Comports | None = None,
    timeouts: FlashTimeouts | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    report: Reporter = _noop,
    wait_for_return: bool = True,
) -> FlashResult:
    """Flash an application to a Particle node over listening-mode YMODEM.

    Raises a ``ParticleError`` subclass (exit codes in ``zeke.particle.errors``) on any
    failure; returns a ``FlashResult`` with per-phase seconds on success or dry run.
    """
    timeouts = timeouts or FlashTimeouts.from_env()
    phases: dict[str, float] = {}
    phase = _Phase(phases)

    phase.start("validate")
    image = load_firmware(firmware)  # before any port is touched
    phase.start("discover")
    target = select_port(port, comports)
    if target.platform_id is not None:
        check_platform(image, target.platform_id)  # from the USB PID: still nothing sent
    phase.stop()
    report(
        f"{image.name}: {image.size} bytes for {platform_label(image.platform_id)}; "
        f"device {target.describe()}"
    )

    result = FlashResult(
        image=image,
        before=DeviceStatus(target.device, target.platform_id, target.device_id, "unknown"),
        dry_run=dry_run,
        block_size=block_size,
        phases=phases,
    )
    phase.start("open")
    link = Link.open(target.device)
    hung_up = False
    try:
        console = ListeningConsole(link, probe_timeout=timeouts.probe)
        phase.start("probe")
        version_text, triggered = _read_version(
            console, enter_listening and not dry_run, timeouts.listen
        )
        if version_text is None:
            if dry_run and enter_listening:
                report(
                    "dry run: the device is not listening; a real run would send the "
                    "28800-baud trigger first"
                )
                result.before.mode = "normal"
                return result
            if triggered:
                raise NotListeningError(
                    f"Device on {target.device} did not enter listening mode within "
                    f"{timeouts.listen:.1f} s of the 28800-baud trigger.",
                    "its application may be blocking the system, or it runs Device OS 6+ (no "
                    "trigger): hold MODE ~3 s until it blinks dark blue, then retry",
                )
            raise NotListeningError(
                f"Device on {target.device} is not in listening mode. Hold MODE ~3 s until it "
                "blinks dark blue, or rerun with --enter-listening.",
                "if it already blinks dark blue it may be a Protected Device (Device OS 6+), "
                "which has no serial console: use DFU",
            )
        if triggered:
            report("entered listening mode (28800-baud trigger)")
        result.before.mode = "listening"
        result.before.device_os = version_text
        device_os = _parse_version(version_text)
        if device_os is not None and not device_os.serial_flashing:
            if device_os.release >= (6, 0, 0):
                raise DeviceOSTooNewError(
                    f"Device OS {device_os} no longer supports serial (YMODEM) flashing; use "
                    "DFU (particle flash --local / --usb).",
                    dfu_hint(image, target.platform_id or image.platform_id),
                )
            raise DeviceOSTooNewError(
                f"Device OS {device_os} predates listening-mode YMODEM (needs 0.5.0 or later)",
                dfu_hint(image, target.platform_id or image.platform_id),
            )
        if version_text in BROKEN_YMODEM_RELEASES:
            result.warnings.append(
                f"Device OS {version_text} has a broken YMODEM receiver; update Device OS if "
                "the transfer fails"
            )
        platform_id = target.platform_id
        system_version = None
        if platform_id is None:
            phase.start("inventory")
            modules = console.modules(timeouts.console)
            if modules is None or "p" not in modules:
                raise PhaseTimeoutError(
                    "module inventory (s)",
                    timeouts.console,
                    "needed to learn the platform of a port without USB ids",
                )
            platform_id = int(modules["p"])
            result.before.platform_id = platform_id
            system_version = _system_part_version(modules)
        result.warnings += check_for_device(image, platform_id, device_os, system_version)
        if target.device_id is None:
            phase.start("identify")
            result.before.device_id = console.identity(timeouts.console).device_id
        phase.stop()
        for warning in result.warnings:
            report(f"warning: {warning}")
        if dry_run:
            return result
        if confirm is not None and not confirm(result):
            raise ZekeError("flash cancelled; nothing was sent")

        phase.start("ready")
        try:
            receiving = console.start_receive(timeouts.ready)
        except DeviceOSTooNewError as err:  # the version check could not see it coming
            raise DeviceOSTooNewError(err.message, dfu_hint(image, platform_id)) from None
        if not receiving:
            YModemSender(link).abort()  # in case a receiver started silently; else ignored
            raise PhaseTimeoutError(
                "ready line",
                timeouts.ready,
                "after 'f' the device printed neither the ready line nor a 'C'",
                "put the device in listening mode (blinking dark blue) and retry",
            )
        phase.stop()
        sender = YModemSender(
            link,
            block_size=block_size,
            timeouts=YModemTimeouts(
                header=timeouts.header,
                block=timeouts.block,
                eot=timeouts.eot,
                validation=timeouts.validation,
                header_poll_grace=min(1.0, timeouts.header),
            ),
            on_progress=on_progress,
        )
        try:
            transfer = sender.send(_wire_name(image.name), image.data)
        except KeyboardInterrupt:
            sender.abort()  # leave the device in listening mode, not in a waiting receiver
            raise
        except DeviceDisconnectedError as err:
            raise DeviceDisconnectedError(
                f"the device on {target.device} disconnected during the transfer "
                f"({err.reason or err.message})",
                "nothing was installed; check the cable, replug and retry",
            ) from None
        phases.update(transfer.phases)
        result.data_blocks, result.resends = transfer.data_blocks, transfer.resends
        result.noise_bytes = transfer.noise_bytes
        report("the device accepted the image")

        phase.start("restart")
        result.reported_size, hung_up = _await_restart(link, timeouts.restart)
        phase.stop()
        if result.reported_size is not None and result.reported_size != image.size:
            warning = f"the device reported {result.reported_size} bytes, the file has {image.size}"
            result.warnings.append(warning)
            report(f"warning: {warning}")
    finally:
        link.close()

    if not hung_up:
        raise PhaseTimeoutError(
            "restart",
            timeouts.restart,
            "the device accepted the image but did not reset",
            "press RESET on the device to apply the new application",
        )
    if wait_for_return:
        phase.start("reenumerate")
        result.after = wait_until_back(result.before, target.device, comports, timeouts, report)
        phase.stop()
    return result


def _wire_name(name: str) -> str:
    """A short ASCII file name for the header block (the device only echoes it back)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name)
    return safe[:32] or "binary"


def _parse_version(text: str) -> DeviceOSVersion | None:
    try:
        return DeviceOSVersion.parse(text)
    except ValueError:
        return None


def _system_part_version(modules: dict) -> int | None:
    for module in modules.get("m", []):
        if module.get("f") == "s":
            return int(module.get("v", 0)) or None
    return None


def _await_restart(link: Link, timeout: float) -> tuple[int | None, bool]:
    """Read the success text until the USB hang-up; (reported size, hung up in time)."""
    text = bytearray()
    hung_up = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text += link.read(4096, max(deadline - time.monotonic(), 0.0))
        except DeviceDisconnectedError:
            hung_up = True
            break
    size = SIZE_RE.search(text)
    return (int(size.group(1)) if size else None), hung_up


def wait_until_back(
    before: DeviceStatus,
    port: str,
    comports: Comports | None,
    timeouts: FlashTimeouts,
    report: Reporter = _noop,
) -> DeviceStatus:
    """Wait for the node to re-enumerate and read its version again.

    A node that boots into its application does not answer ``v``; it is switched into
    listening mode with the 28800-baud trigger, asked, and sent back with ``x``.
    """
    deadline = time.monotonic() + timeouts.reenumerate
    new_port = wait_for_port(before.device_id, port, comports, deadline)
    if new_port is None:
        raise PhaseTimeoutError(
            "node to come back",
            timeouts.reenumerate,
            "it reset after accepting the image but did not re-enumerate on USB",
            "the image was accepted; replug the node and check it with zeke nodes",
        )
    report(f"node back on {new_port}")
    while True:
        try:
            link = Link.open(new_port)
            break
        except ParticleError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    with link:
        console = ListeningConsole(link, probe_timeout=timeouts.probe)
        status = DeviceStatus(new_port, before.platform_id, before.device_id, "normal")
        version = console.probe_version()
        if version is not None:
            status.mode, status.device_os = "listening", version
            return status
        remaining = deadline - time.monotonic()
        if remaining > 0:
            version = console.enter_listening(min(timeouts.listen, remaining))
            if version is not None:
                status.device_os = version
                console.leave_listening()
    return status
