"""Property: every mutated binary is refused before any port opens, and the device sees 0 bytes.

Each mutation is built to break at least one rule the host enforces (a byte burst without
fixed checksums, truncation, padding, another platform, function, index, flags, MCU target,
address range, SHA-256 or suffix size with checksums made consistent again, or no module at
all). One simulated Xenon stays attached for the whole run; ``flash_node`` runs for every
example with discovery pointing at it, and must raise ``FirmwareError`` (exit code 5) without
opening the port.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeke.particle import flash as flash_module
from zeke.particle.errors import FirmwareError
from zeke.particle.firmware import load_firmware
from zeke.particle.flash import flash_node
from zeke.particle.platforms import PLATFORMS, DeviceOSVersion
from zeke.testing.particle_firmware import build_user_app, refresh_checksums
from zeke.testing.particle_sim import validate_on_device

EXAMPLES = 1200
BASE = build_user_app("xenon", 11012)
SIZE = len(BASE)
XENON = 14


def _set(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@st.composite
def mutations(draw) -> tuple[str, bytes]:
    kind = draw(
        st.sampled_from(
            [
                "burst",
                "truncate",
                "pad",
                "platform",
                "function",
                "index",
                "flags",
                "mcu",
                "range",
                "sha",
                "suffix-size",
                "garbage",
            ]
        )
    )
    if kind == "burst":  # <= 32 changed bits in a row: CRC-32 always notices
        start = draw(st.integers(0, SIZE - 1))
        length = draw(st.integers(1, min(4, SIZE - start)))
        masks = draw(st.lists(st.integers(1, 255), min_size=length, max_size=length))
        out = bytearray(BASE)
        for i, mask in enumerate(masks):
            out[start + i] ^= mask
        return kind, bytes(out)
    if kind == "truncate":
        return kind, BASE[: draw(st.integers(0, SIZE - 1))]
    if kind == "pad":
        return kind, BASE + draw(st.binary(min_size=1, max_size=4096))
    if kind == "platform":
        other = draw(st.sampled_from(sorted(set(PLATFORMS) - {XENON})))
        return kind, refresh_checksums(_set(BASE, 12, "<H", other))
    if kind == "function":
        return kind, refresh_checksums(
            _set(BASE, 14, "<B", draw(st.integers(0, 255).filter(lambda f: f != 5)))
        )
    if kind == "index":
        return kind, refresh_checksums(
            _set(BASE, 15, "<B", draw(st.integers(0, 255).filter(lambda i: i != 1)))
        )
    if kind == "flags":
        flags = draw(st.integers(1, 255).filter(lambda f: f & ~0x10))
        return kind, refresh_checksums(_set(BASE, 9, "<B", flags))
    if kind == "mcu":
        mcu = draw(st.integers(1, 254))
        return kind, refresh_checksums(_set(BASE, 8, "<B", mcu))
    if kind == "range":  # move the whole module so it leaves 0xD4000-0xF4000
        start = draw(
            st.one_of(
                st.integers(0, 0xD4000 - 1),
                st.integers(0xF4000 - SIZE + 1, 0xFFFFFFFF - SIZE),
            )
        )
        moved = _set(_set(BASE, 0, "<I", start), 4, "<I", start + SIZE - 4)
        return kind, refresh_checksums(moved)
    if kind == "sha":
        pos = draw(st.integers(SIZE - 38, SIZE - 7))
        out = bytearray(BASE)
        out[pos] ^= draw(st.integers(1, 255))
        out[-4:] = struct.pack(">I", zlib.crc32(bytes(out[:-4])))
        return kind, bytes(out)
    if kind == "suffix-size":
        value = draw(st.one_of(st.integers(0, 35), st.integers(SIZE - 27, 0xFFFF)))
        out = bytearray(_set(BASE, SIZE - 6, "<H", value))
        out[-4:] = struct.pack(">I", zlib.crc32(bytes(out[:-4])))
        return kind, bytes(out)
    return kind, draw(st.binary(min_size=0, max_size=20000))


# Kinds the device itself would reject too (CRC, size, platform, range): the simulator's own
# validation must agree with the host.
DEVICE_REJECTS = {"burst", "truncate", "platform", "range"}


@pytest.fixture(scope="module")
def xenon(tmp_path_factory):
    from zeke.testing.particle_sim import ParticleSimulator

    link = tmp_path_factory.mktemp("fuzz") / "ttyACM0"
    with ParticleSimulator("xenon", "1.5.2", time_scale=0.05, link_path=link) as sim:
        yield sim


def test_mutated_binaries_never_reach_the_device(xenon, tmp_path, monkeypatch):
    opened: list[str] = []
    real_open = flash_module.Link.open
    monkeypatch.setattr(
        flash_module.Link,
        "open",
        classmethod(lambda cls, port, *a, **k: opened.append(port) or real_open(port, *a, **k)),
    )
    target = tmp_path / "mutant.bin"
    seen: Counter[str] = Counter()
    dos = DeviceOSVersion.parse("1.5.2")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutations())
    def check(mutation: tuple[str, bytes]) -> None:
        kind, data = mutation
        assert data != BASE
        target.write_bytes(data)
        with pytest.raises(FirmwareError) as refused:
            flash_node(target, comports=xenon.comports, wait_for_return=False)
        assert refused.value.exit_code == 5
        assert refused.value.message
        if kind in DEVICE_REJECTS:
            assert validate_on_device(data, XENON, dos) is not None, kind
        seen[kind] += 1

    check()

    assert sum(seen.values()) >= 1000, seen
    assert len(seen) == 12, seen
    assert opened == [], "validation must refuse before any port is opened"
    assert xenon.received == 0, "the device must not receive a single byte"
    assert xenon.line_speeds == [], "nobody even configured the port"
    assert xenon.transfers == []
    # The unmutated file is accepted: the refusals are about the mutations.
    target.write_bytes(BASE)
    assert load_firmware(target).size == SIZE
