"""Synthesise Particle application binaries with a valid prefix, suffix, SHA-256 and CRC-32.

No Particle binary is shipped with zeke; tests, the simulator's users and the benchmark build
their own. The layout follows device-os ``build/module.mk``: the module prefix at offset 0,
the application bytes, then the suffix (product id, product version, reserved, SHA-256 of all
preceding bytes, suffix size) and the CRC-32 of everything before it, stored big-endian.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

from zeke.particle.firmware import FULL_SUFFIX_SIZE, PREFIX_SIZE, ModuleInfo
from zeke.particle.platforms import FUNCTION_SYSTEM_PART, FUNCTION_USER_PART, platform_by_name

USER_SLOT_START = {1: 0x000D4000, 2: 0x000B4000}  # Gen 3: 128 KB slot, 256 KB slot (DOS >= 3.1)
GEN2_USER_START = 0x080A0000


def _platform_id(platform: str | int) -> int:
    if isinstance(platform, int):
        return platform
    found = platform_by_name(platform)
    if found is None:
        raise ValueError(f"unknown platform {platform!r}")
    return found.id


def refresh_checksums(image: bytes | bytearray) -> bytes:
    """Recompute the suffix SHA-256 and the trailing CRC-32 after editing an image."""
    data = bytearray(image)
    data[-38:-6] = hashlib.sha256(bytes(data[:-38])).digest()
    data[-4:] = struct.pack(">I", zlib.crc32(bytes(data[:-4])) & 0xFFFFFFFF)
    return bytes(data)


def build_user_app(
    platform: str | int = "xenon",
    size: int = 11012,
    *,
    module_index: int = 1,
    module_version: int = 6,
    system_dependency: int = 1512,
    product_id: int | None = None,
    product_version: int = 3,
    seed: int = 0,
) -> bytes:
    """A user application of exactly ``size`` bytes that passes every host and device check."""
    platform_id = _platform_id(platform)
    if size < PREFIX_SIZE + FULL_SUFFIX_SIZE + 4:
        raise ValueError(f"size {size} is too small for a module")
    if platform_id in (6, 8, 10):
        start, system_index = GEN2_USER_START, 2
    else:
        start, system_index = USER_SLOT_START[module_index], 1
    info = ModuleInfo(
        start=start,
        end=start + size - 4,
        mcu_target=0,
        flags=0,
        module_version=module_version,
        platform_id=platform_id,
        function=FUNCTION_USER_PART,
        index=module_index,
        dependency=(FUNCTION_SYSTEM_PART, system_index, system_dependency),
        dependency2=(0, 0, 0),
    )
    body_size = size - PREFIX_SIZE - FULL_SUFFIX_SIZE - 4
    rng = np.random.default_rng(seed)
    body = rng.integers(0, 256, size=body_size, dtype=np.uint8).tobytes()
    suffix = struct.pack(
        "<HHH32sH",
        platform_id if product_id is None else product_id,
        product_version,
        0,
        bytes(32),
        FULL_SUFFIX_SIZE,
    )
    return refresh_checksums(info.pack() + body + suffix + bytes(4))
