"""Particle platform ids, USB identities, module functions, flash map and Device OS versions.

Pure data and tiny helpers shared by firmware validation, discovery, the flash flow and the
device simulator, so every part agrees on which id is which board and where a module may live.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PARTICLE_VID = 0x2B04
CORE_VID = 0x1D50
CORE_SERIAL_PID = 0x607D
SERIAL_PID_BASE = 0xC000
DFU_PID_BASE = 0xD000


@dataclass(frozen=True)
class Platform:
    """One Particle hardware platform."""

    id: int
    name: str  # Device OS name, e.g. "xenon"
    title: str  # e.g. "Xenon"
    gen: int  # 1, 2, 3 (0: build-only or third party)
    serial_flash: bool = True  # can be flashed over listening-mode YMODEM at all
    last_device_os: tuple[int, int, int] | None = None  # newest release for a dropped platform

    @property
    def serial_pid(self) -> int:
        return SERIAL_PID_BASE | self.id

    @property
    def dfu_pid(self) -> int:
        return DFU_PID_BASE | self.id

    def label(self) -> str:
        return f"{self.title} (id {self.id})"


PLATFORMS: dict[int, Platform] = {
    p.id: p
    for p in (
        Platform(0, "core", "Core", 1, serial_flash=False),
        Platform(6, "photon", "Photon", 2),
        Platform(8, "p1", "P1", 2),
        Platform(10, "electron", "Electron", 2),
        Platform(12, "argon", "Argon", 3),
        Platform(13, "boron", "Boron", 3),
        Platform(14, "xenon", "Xenon", 3, last_device_os=(1, 5, 4)),
        Platform(15, "esomx", "E SoM X", 3),
        Platform(22, "asom", "A SoM", 3, last_device_os=(1, 4, 4)),
        Platform(23, "bsom", "B SoM", 3),
        Platform(24, "xsom", "X SoM", 3, last_device_os=(1, 4, 4)),
        Platform(25, "b5som", "B5 SoM", 3),
        Platform(26, "tracker", "Tracker", 3),
        Platform(28, "trackerm", "Tracker M", 3, serial_flash=False),
        Platform(32, "p2", "P2 / Photon 2", 3, serial_flash=False),
        Platform(35, "msom", "M SoM", 3, serial_flash=False),
        Platform(88, "duo", "RedBear Duo", 0),
    )
}

GEN3_NRF52 = frozenset({12, 13, 14, 15, 22, 23, 24, 25, 26})
GEN2_STM32 = frozenset({6, 8, 10, 88})


def platform_by_id(platform_id: int) -> Platform | None:
    return PLATFORMS.get(platform_id)


def platform_by_name(name: str) -> Platform | None:
    key = name.strip().lower().replace(" ", "")
    for platform in PLATFORMS.values():
        if key in (platform.name, platform.title.lower().replace(" ", "")):
            return platform
    if key.isdigit():
        return PLATFORMS.get(int(key))
    return None


def platform_label(platform_id: int) -> str:
    platform = PLATFORMS.get(platform_id)
    return platform.label() if platform else f"unknown platform (id {platform_id})"


# Module functions (module_info_t.module_function) and their character in the `s` JSON.
MODULE_FUNCTIONS: dict[int, tuple[str, str]] = {
    0: ("none", "n"),
    1: ("resource", "r"),
    2: ("bootloader", "b"),
    3: ("monolithic firmware", "m"),
    4: ("system part", "s"),
    5: ("user part (application)", "u"),
    6: ("settings", "_"),
    7: ("NCP firmware", "c"),
    8: ("radio stack", "a"),
    9: ("asset", "t"),
}
FUNCTION_BOOTLOADER = 2
FUNCTION_SYSTEM_PART = 4
FUNCTION_USER_PART = 5
FUNCTION_NCP = 7
FUNCTION_RADIO_STACK = 8

# Module flags (module_info_t.flags).
FLAG_DROP_MODULE_INFO = 0x01
FLAG_COMPRESSED = 0x02
FLAG_COMBINED = 0x04
FLAG_ENCRYPTED = 0x08
FLAG_PREFIX_EXTENSIONS = 0x10
KNOWN_FLAGS = 0x1F

MCU_MAIN = 0x00
MCU_ESP32_NCP = 0x21
MCU_ANY = 0xFF

OTA_AREA_BYTES = 1500 * 1024  # Gen 3 external QSPI staging area


@dataclass(frozen=True)
class Slot:
    """Where a module of one (function, index, MCU) may live in flash."""

    name: str
    function: int
    index: int
    start: int
    end: int
    mcu: int = MCU_MAIN
    min_device_os: tuple[int, int, int] | None = None
    platforms: frozenset[int] | None = None  # None: every platform of the family

    @property
    def size(self) -> int:
        return self.end - self.start

    def fits(self, start: int, end: int) -> bool:
        """True when [start, end) plus the 4-byte CRC at ``end`` lies inside the slot."""
        return self.start <= start < end and end + 4 <= self.end

    def describe(self) -> str:
        return f"{self.name} slot 0x{self.start:05X}-0x{self.end:05X} ({self.size // 1024} KB)"


GEN3_SLOTS: tuple[Slot, ...] = (
    Slot("radio stack", FUNCTION_RADIO_STACK, 0, 0x01000, 0x30000),
    Slot("system part 1", FUNCTION_SYSTEM_PART, 1, 0x30000, 0xD4000),
    Slot("user part", FUNCTION_USER_PART, 1, 0xD4000, 0xF4000),
    Slot("256 KB user part", FUNCTION_USER_PART, 2, 0xB4000, 0xF4000, min_device_os=(3, 1, 0)),
    Slot("bootloader", FUNCTION_BOOTLOADER, 0, 0xF4000, 0x100000),
    Slot(
        "NCP firmware",
        FUNCTION_NCP,
        0,
        0,
        OTA_AREA_BYTES,
        mcu=MCU_ESP32_NCP,
        platforms=frozenset({12}),
    ),
)
GEN2_SLOTS: tuple[Slot, ...] = (Slot("user part", FUNCTION_USER_PART, 1, 0x080A0000, 0x080C0000),)


def slots_for(platform_id: int) -> tuple[Slot, ...]:
    if platform_id in GEN3_NRF52:
        return GEN3_SLOTS
    if platform_id in GEN2_STM32:
        return GEN2_SLOTS
    return ()


def find_slot(
    platform_id: int,
    function: int,
    index: int,
    mcu: int = MCU_MAIN,
    device_os: DeviceOSVersion | None = None,
) -> Slot | None:
    """The slot a module belongs in, honouring the Device OS era when it is known."""
    for slot in slots_for(platform_id):
        if (slot.function, slot.index) != (function, index):
            continue
        if slot.mcu != mcu and not (mcu == MCU_ANY and slot.mcu == MCU_MAIN):
            continue
        if slot.platforms is not None and platform_id not in slot.platforms:
            continue
        if slot.min_device_os and device_os and device_os.release < slot.min_device_os:
            continue
        return slot
    return None


_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.+-]+))?(?:\s+(minimal))?$")


@dataclass(frozen=True)
class DeviceOSVersion:
    """A Device OS release name such as ``1.5.2``, ``1.5.4-rc.2`` or ``4.2.0 minimal``."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    minimal: bool = False

    @classmethod
    def parse(cls, text: str) -> DeviceOSVersion:
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise ValueError(f"not a Device OS version: {text!r}")
        major, minor, patch, pre, minimal = match.groups()
        return cls(int(major), int(minor), int(patch), pre or "", bool(minimal))

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def serial_flashing(self) -> bool:
        """YMODEM over listening mode exists from 0.5.0 up to (not including) 6.0.0."""
        return (0, 5, 0) <= self.release < (6, 0, 0)

    @property
    def era(self) -> str:
        """Reply dialect: ``"1.x"`` (hex masks), ``"2-5"`` (negative codes) or ``"6+"``."""
        if self.major < 2:
            return "1.x"
        if self.major < 6:
            return "2-5"
        return "6+"

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        return text + (" minimal" if self.minimal else "")


# Releases whose YMODEM receiver is known to be broken (device-os PR #2051).
BROKEN_YMODEM_RELEASES = frozenset({"1.5.0-rc.2"})
