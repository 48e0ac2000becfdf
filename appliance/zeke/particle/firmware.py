"""Particle firmware binaries: parse the module prefix and suffix, refuse anything unsafe.

Validation runs before any serial port is opened, so an invalid file never costs the device a
byte. ``load_firmware`` does every check that needs only the file (size, CRC-32, module header,
function, flags, suffix, SHA-256, address range for the platform's flash map);
``check_for_device`` adds what needs the device (platform id, Device OS era, dependency).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from zeke.particle.errors import FirmwareError, PlatformMismatchError
from zeke.particle.platforms import (
    FUNCTION_USER_PART,
    KNOWN_FLAGS,
    MCU_ANY,
    MCU_MAIN,
    MODULE_FUNCTIONS,
    PLATFORMS,
    DeviceOSVersion,
    find_slot,
    platform_label,
    slots_for,
)

PREFIX = struct.Struct("<IIBBHHBBBBHBBH")  # module_info_t, 24 bytes, little-endian
PREFIX_SIZE = PREFIX.size
PREFIX_OFFSETS = (0, 0x200)  # user apps / radio stack at 0; Gen 3 system parts, bootloader at 0x200
BASE_SUFFIX_SIZE = 36  # reserved(2) + sha256(32) + suffix size(2)
FULL_SUFFIX_SIZE = 40  # + product id(2) + product version(2)
MIN_FILE_SIZE = PREFIX_SIZE + FULL_SUFFIX_SIZE + 4
MAX_APP_SIZE = 256 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024  # read at most this much; larger than any module file
USER_FLAGS_ALLOWED = 0x10  # PREFIX_EXTENSIONS only; compressed/encrypted/combined are refused


@dataclass(frozen=True)
class ModuleInfo:
    """The 24-byte ``module_info_t`` prefix."""

    start: int
    end: int
    mcu_target: int
    flags: int
    module_version: int
    platform_id: int
    function: int
    index: int
    dependency: tuple[int, int, int]  # (function, index, version)
    dependency2: tuple[int, int, int]

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ModuleInfo:
        f = PREFIX.unpack_from(data, offset)
        return cls(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8:11], f[11:14])

    def pack(self) -> bytes:
        return PREFIX.pack(
            self.start,
            self.end,
            self.mcu_target,
            self.flags,
            self.module_version,
            self.platform_id,
            self.function,
            self.index,
            *self.dependency,
            *self.dependency2,
        )

    @property
    def plausible(self) -> bool:
        """Looks like a real module header (the checks binary-version-reader scores)."""
        return (
            self.start < self.end
            and self.function in MODULE_FUNCTIONS
            and self.function != 0
            and self.platform_id in PLATFORMS
        )

    @property
    def function_name(self) -> str:
        return MODULE_FUNCTIONS.get(self.function, (f"function {self.function}", "?"))[0]


@dataclass(frozen=True)
class FirmwareImage:
    """A validated firmware file and what its header and suffix say."""

    name: str
    data: bytes
    info: ModuleInfo
    prefix_offset: int
    crc32: int
    sha256: bytes
    suffix_size: int
    product_id: int | None
    product_version: int | None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def platform_id(self) -> int:
        return self.info.platform_id

    def summary(self) -> dict:
        """A JSON-ready description (used by ``--dry-run`` and the bench script)."""
        return {
            "name": self.name,
            "size": self.size,
            "platform_id": self.platform_id,
            "platform": PLATFORMS[self.platform_id].name,
            "function": self.info.function_name,
            "module_index": self.info.index,
            "module_version": self.info.module_version,
            "start": f"0x{self.info.start:05X}",
            "end": f"0x{self.info.end:05X}",
            "depends_on_system_version": self.info.dependency[2] or None,
            "crc32": f"0x{self.crc32:08X}",
            "sha256": self.sha256.hex(),
        }


def crc32_of(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def load_firmware(path: str | Path) -> FirmwareImage:
    """Read and validate a firmware file; raise ``FirmwareError`` with the fix on any fault.

    Only a regular file of at most ``MAX_FILE_BYTES`` is read: a FIFO, a device or a huge
    file is refused before its first byte (``zeke.inputs``).
    """
    from zeke.inputs import read_regular, shown

    data = read_regular(
        path,
        "firmware file",
        max_bytes=MAX_FILE_BYTES,
        error=FirmwareError,
        hint="pass the application's .bin file (particle compile <platform>)",
        missing="firmware file {} does not exist",
    )
    return parse_firmware(data, shown(Path(path).name))


def _find_prefix(data: bytes) -> tuple[ModuleInfo, int] | None:
    for offset in PREFIX_OFFSETS:
        if len(data) >= offset + PREFIX_SIZE:
            info = ModuleInfo.unpack(data, offset)
            if info.plausible:
                return info, offset
    return None


def parse_firmware(data: bytes, name: str = "firmware.bin") -> FirmwareImage:
    """Validate ``data`` as a Particle user application; see ``load_firmware``."""
    size = len(data)
    if size < MIN_FILE_SIZE:
        raise FirmwareError(
            f"not a Particle firmware module ({name} is {size} bytes; a module has at least "
            f"{MIN_FILE_SIZE})"
        )
    found = _find_prefix(data)
    stored_crc = struct.unpack_from(">I", data, size - 4)[0]
    computed_crc = crc32_of(data[:-4])
    if found is None:
        raise FirmwareError(
            "not a Particle firmware module (no valid module header)",
            "build the application for the device (particle compile <platform>) and use the .bin",
        )
    info, offset = found
    covered = info.end - info.start + 4
    if covered != size and info.function == FUNCTION_USER_PART and offset == 0:
        raise FirmwareError(
            f"not a valid module: the header covers {covered} bytes "
            f"(0x{info.start:05X}-0x{info.end:05X} + CRC) but the file has {size}",
            "the file is truncated or padded; copy or download it again",
        )
    if stored_crc != computed_crc:
        raise FirmwareError(
            f"corrupt firmware: CRC-32 stored 0x{stored_crc:08X}, computed 0x{computed_crc:08X}",
            "the file is damaged; copy or download it again",
        )
    if info.function != FUNCTION_USER_PART or offset != 0:
        raise FirmwareError(
            f"{name} is a {info.function_name} module, not an application; zeke flash-node "
            "flashes applications (user parts) only",
            "flash Device OS parts over DFU (particle flash --local)",
        )
    if size > MAX_APP_SIZE:
        raise FirmwareError(f"{name} is {size} bytes; an application is at most {MAX_APP_SIZE}")
    if info.flags & ~KNOWN_FLAGS:
        raise FirmwareError(f"not a valid module: unknown module flags 0x{info.flags:02X}")
    if info.flags & ~USER_FLAGS_ALLOWED:
        raise FirmwareError(
            f"{name} has module flags 0x{info.flags:02X} (compressed, encrypted, combined or "
            "drop-info); serial flashing takes plain applications only"
        )
    if info.mcu_target not in (MCU_MAIN, MCU_ANY):
        raise FirmwareError(
            f"{name} targets MCU 0x{info.mcu_target:02X}, not the main MCU; "
            "it is not an application"
        )

    suffix_size = struct.unpack_from("<H", data, size - 6)[0]
    if suffix_size == 0xFFFF:
        raise FirmwareError(
            f"{name} has no module suffix (size 0xFFFF), so its SHA-256 cannot be checked"
        )
    if not BASE_SUFFIX_SIZE <= suffix_size <= size - PREFIX_SIZE - 4:
        raise FirmwareError(f"not a valid module: suffix size {suffix_size} is impossible")
    stored_sha = data[size - 38 : size - 6]
    computed_sha = hashlib.sha256(data[: size - 38]).digest()
    if stored_sha != computed_sha:
        raise FirmwareError(
            "corrupt firmware: the SHA-256 in the module suffix does not match the contents "
            f"(stored {stored_sha.hex()[:16]}..., computed {computed_sha.hex()[:16]}...)",
            "the file was modified after it was built; rebuild or download it again",
        )
    product_id = product_version = None
    if suffix_size >= FULL_SUFFIX_SIZE:
        product_id, product_version = struct.unpack_from("<HH", data, size - 44)

    if not slots_for(info.platform_id):
        raise FirmwareError(
            f"{name} is for {platform_label(info.platform_id)}, which zeke cannot serial-flash"
        )
    slot = find_slot(info.platform_id, info.function, info.index, info.mcu_target)
    if slot is None:
        raise FirmwareError(
            f"address range does not fit the user part slot: module index {info.index} is not "
            f"an application slot on {platform_label(info.platform_id)}"
        )
    if not slot.fits(info.start, info.end):
        raise FirmwareError(
            f"address range does not fit the {slot.describe()}: the module spans "
            f"0x{info.start:05X}-0x{info.end + 4:05X}"
        )
    platform = PLATFORMS[info.platform_id]
    if (
        slot.min_device_os
        and platform.last_device_os
        and platform.last_device_os < (slot.min_device_os)
    ):
        raise FirmwareError(
            f"address range does not fit any {platform.title}: the {slot.describe()} needs "
            f"Device OS {'.'.join(map(str, slot.min_device_os))}, and the "
            f"{platform.title}'s last Device OS is {'.'.join(map(str, platform.last_device_os))}",
            "build the application for the 128 KB user slot (Device OS 1.5.x)",
        )
    return FirmwareImage(
        name=name,
        data=bytes(data),
        info=info,
        prefix_offset=offset,
        crc32=stored_crc,
        sha256=stored_sha,
        suffix_size=suffix_size,
        product_id=product_id,
        product_version=product_version,
    )


def check_platform(image: FirmwareImage, device_platform_id: int) -> None:
    """Refuse a file built for another platform (needs only the USB PID or ``s``)."""
    if image.platform_id != device_platform_id:
        raise PlatformMismatchError(
            f"firmware is for {platform_label(image.platform_id)} but the device is "
            f"{platform_label(device_platform_id)}",
            "build the application for the device's platform",
        )


def check_for_device(
    image: FirmwareImage,
    device_platform_id: int,
    device_os: DeviceOSVersion | None,
    system_module_version: int | None = None,
) -> list[str]:
    """Device-dependent checks; raise on a refusal, return warnings worth printing."""
    check_platform(image, device_platform_id)
    info = image.info
    warnings: list[str] = []
    if device_os is not None:
        slot = find_slot(info.platform_id, info.function, info.index, info.mcu_target, device_os)
        if slot is None or not slot.fits(info.start, info.end):
            wanted = find_slot(info.platform_id, info.function, info.index, info.mcu_target)
            needs = (
                f"; it needs Device OS {'.'.join(map(str, wanted.min_device_os))} or later"
                if wanted and wanted.min_device_os
                else ""
            )
            raise FirmwareError(
                f"address range does not fit the user part slot of Device OS {device_os}: "
                f"the module spans 0x{info.start:05X}-0x{info.end + 4:05X}{needs}",
                "build the application for the Device OS version the device runs",
            )
    needed = info.dependency[2] if info.dependency[0] else 0
    if needed and system_module_version is not None and needed > system_module_version:
        warnings.append(
            f"the application needs system part version {needed} but the device has "
            f"{system_module_version}: it will flash, then boot into safe mode (breathing "
            "magenta) until Device OS is updated"
        )
    return warnings
