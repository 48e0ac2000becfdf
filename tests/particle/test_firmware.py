"""Firmware binary validation: the layout, and one refusal per rule with its exact message."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from zeke.particle.errors import FirmwareError, PlatformMismatchError
from zeke.particle.firmware import check_for_device, load_firmware, parse_firmware
from zeke.particle.platforms import DeviceOSVersion
from zeke.particle.ymodem import explain_validation
from zeke.testing.particle_firmware import build_user_app, refresh_checksums

APP = build_user_app("xenon", 11012)


def _patch(data: bytes, offset: int, fmt: str, value: int, fix: bool = True) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return refresh_checksums(out) if fix else bytes(out)


def test_synthesised_app_has_the_spec_layout():
    image = parse_firmware(APP, "tinker.bin")
    # Same prefix shape as the spec's tinker-0.8.0-rc.27-xenon.bin: 0xD4000..0xD6B00, 11,012 B.
    assert APP[:8] == bytes.fromhex("00400d00006b0d00")
    assert (image.info.platform_id, image.info.function, image.info.index) == (14, 5, 1)
    assert image.info.dependency[:2] == (4, 1)
    assert struct.unpack(">I", APP[-4:])[0] == zlib.crc32(APP[:-4])
    assert APP[-38:-6] == hashlib.sha256(APP[:-38]).digest()
    assert struct.unpack("<H", APP[-6:-4])[0] == 40
    assert image.product_id == 14 and image.product_version == 3


def test_crc32_vector():
    assert zlib.crc32(b"123456789") == 0xCBF43926


def test_corrupt_crc_message():
    bad = bytearray(APP)
    bad[500] ^= 0x01
    with pytest.raises(FirmwareError) as err:
        parse_firmware(bytes(bad))
    stored = struct.unpack(">I", APP[-4:])[0]
    computed = zlib.crc32(bytes(bad[:-4]))
    assert err.value.message == (
        f"corrupt firmware: CRC-32 stored 0x{stored:08X}, computed 0x{computed:08X}"
    )
    assert err.value.exit_code == 5


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "not a Particle firmware module"),
        (bytes(4096), "not a Particle firmware module (no valid module header)"),
        (APP[:-1], "the header covers 11012 bytes (0xD4000-0xD6B00 + CRC) but the file has 11011"),
        (APP + b"\0" * 4, "the header covers 11012 bytes"),
        (_patch(APP, 14, "<B", 4), "is a system part module, not an application"),
        (_patch(APP, 9, "<B", 0x02), "module flags 0x02"),
        (_patch(APP, 8, "<B", 0x21), "targets MCU 0x21"),
        (_patch(APP, 15, "<B", 3), "address range does not fit the user part slot"),
        (_patch(APP, 15, "<B", 2), "the Xenon's last Device OS is 1.5.4"),
        (_patch(APP, 12, "<H", 0), "which zeke cannot serial-flash"),
        (
            _patch(_patch(APP, 0, "<I", 0xF2000, False), 4, "<I", 0xF2000 + 11008),
            "address range does not fit the user part slot 0xD4000-0xF4000 (128 KB)",
        ),
        (_patch(APP, len(APP) - 6, "<H", 0xFFFF), "has no module suffix"),
        (_patch(APP, len(APP) - 6, "<H", 12), "suffix size 12 is impossible"),
    ],
)
def test_refusals(data, phrase):
    with pytest.raises(FirmwareError) as err:
        parse_firmware(data, "app.bin")
    assert phrase in err.value.message
    assert err.value.exit_code == 5


def test_sha256_mismatch_is_refused():
    out = bytearray(APP)
    out[-20] ^= 0xFF  # inside the SHA field; CRC made consistent again
    out[-4:] = struct.pack(">I", zlib.crc32(bytes(out[:-4])))
    with pytest.raises(FirmwareError, match="SHA-256 in the module suffix does not match"):
        parse_firmware(bytes(out))


def test_device_checks():
    image = parse_firmware(APP)
    with pytest.raises(PlatformMismatchError) as err:
        check_for_device(image, 12, DeviceOSVersion.parse("1.5.2"))
    assert err.value.message == "firmware is for Xenon (id 14) but the device is Argon (id 12)"
    needs_newer = parse_firmware(build_user_app("xenon", 11012, system_dependency=2000))
    warnings = check_for_device(needs_newer, 14, DeviceOSVersion.parse("1.5.2"), 1512)
    assert warnings and "safe mode" in warnings[0]
    assert check_for_device(image, 14, DeviceOSVersion.parse("1.5.2"), 1512) == []


def test_file_errors(tmp_path):
    with pytest.raises(FirmwareError, match="does not exist"):
        load_firmware(tmp_path / "missing.bin")
    with pytest.raises(FirmwareError, match="is a directory"):
        load_firmware(tmp_path)


def test_device_os_versions():
    v = DeviceOSVersion.parse("1.5.4-rc.2")
    assert v.release == (1, 5, 4) and v.era == "1.x" and v.serial_flashing
    assert DeviceOSVersion.parse("4.2.0 minimal").minimal
    assert (
        DeviceOSVersion.parse("6.0.0").era == "6+"
        and not DeviceOSVersion.parse("6.0.0").serial_flashing
    )
    assert not DeviceOSVersion.parse("0.4.9").serial_flashing
    with pytest.raises(ValueError):
        DeviceOSVersion.parse("banana")


def test_validation_codes_are_explained():
    assert explain_validation("0x10") == "platform mismatch"
    assert explain_validation("0x12") == "integrity: CRC-32 mismatch, platform mismatch"
    assert explain_validation("-1330") == "integrity: CRC-32 mismatch"
    assert "every check failed" in explain_validation("0x5e")
