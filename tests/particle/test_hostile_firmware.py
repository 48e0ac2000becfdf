"""Hostile firmware files for ``zeke flash-node``: every one refused before any port opens.

Generated into tmp_path: bit bursts, truncations and paddings of a real (synthesised)
application; every header field set to values the host must refuse, with checksums made
consistent again so only the rule under test can catch it; other module kinds; files that are
not firmware at all; huge and sparse files; and special paths (FIFOs, devices, directories,
sockets, broken links, over-long, markup and non-UTF-8 names). All go through
``load_firmware`` in-process (the first thing ``flash_node`` does), where nothing but a
``ZekeError`` may come out; a sample goes through the real ``zeke flash-node --yes`` with no
device attached, which must refuse the file (exit 5) rather than look for a device.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile import refused, zeke
from zeke.errors import ZekeError
from zeke.particle.errors import FirmwareError
from zeke.particle.firmware import MAX_APP_SIZE, load_firmware
from zeke.particle.platforms import MCU_ANY, PLATFORMS
from zeke.testing.particle_firmware import build_user_app, refresh_checksums

BASE = build_user_app("xenon", 11012)
SIZE = len(BASE)


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    message: str = ""  # a substring of the refusal; "" for any
    valid: bool | None = False  # True: the host accepts it; None: either (the device decides)


def _set(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _crc_only(data: bytes) -> bytes:
    out = bytearray(data)
    out[-4:] = struct.pack(">I", zlib.crc32(bytes(out[:-4])) & 0xFFFFFFFF)
    return bytes(out)


def build_cases(root: Path) -> list[Case]:
    rng = random.Random(1313)
    cases: list[Case] = []

    def add(name: str, data: bytes, message: str = "", valid: bool = False) -> None:
        path = root / f"{len(cases):03d}-{name}.bin"
        path.write_bytes(data)
        cases.append(Case(name, path, message, valid))

    for k in range(50):
        out = bytearray(BASE)
        at = rng.randrange(SIZE - 4)
        for i in range(rng.randint(1, 4)):
            out[at + i] ^= rng.randrange(1, 256)
        add(f"burst-{k}", bytes(out))
    for cut in sorted(
        {0, 1, 23, 24, 63, 67, 68, 512, SIZE // 2, SIZE - 38, SIZE - 5, SIZE - 1}
        | {rng.randrange(SIZE) for _ in range(8)}
    ):
        add(f"truncated-{cut}", BASE[:cut])
    for pad in (1, 3, 512, 4096):
        add(f"padded-{pad}", BASE + rng.randbytes(pad))
        add(f"zero-padded-{pad}", BASE + b"\0" * pad)
    for pid in sorted(set(range(0, 40)) - {14} | {0xFFFF, 0x8000}):
        add(
            f"platform-{pid}",
            refresh_checksums(_set(BASE, 12, "<H", pid)),
            valid=None if pid in PLATFORMS else False,
        )
    for function in (0, 1, 2, 3, 4, 6, 7, 8, 0xFF):
        add(f"function-{function}", refresh_checksums(_set(BASE, 14, "<B", function)))
    for index in (0, 2, 3, 7, 0xFF):
        add(f"index-{index}", refresh_checksums(_set(BASE, 15, "<B", index)))
    for flags in (0x01, 0x02, 0x04, 0x08, 0x20, 0x40, 0x80, 0xFF, 0x11, 0x12):
        add(f"flags-{flags:#x}", refresh_checksums(_set(BASE, 9, "<B", flags)))
    for mcu in (1, 2, 3, 0x7F, 0xFE, 0xFF):
        add(
            f"mcu-{mcu}",
            refresh_checksums(_set(BASE, 8, "<B", mcu)),
            valid=None if mcu == MCU_ANY else False,
        )
    for start in (0, 0x1000, 0xD3FFF, 0xF4000, 0x08000000, 0xFFFFFFFF - SIZE, 0xFFFFF000):
        moved = _set(_set(BASE, 0, "<I", start), 4, "<I", (start + SIZE - 4) & 0xFFFFFFFF)
        add(f"range-{start:#x}", refresh_checksums(moved))
    for end in (0, 0xD4000, 0xD4000 + SIZE, 0xFFFFFFFF):
        add(f"end-{end:#x}", refresh_checksums(_set(BASE, 4, "<I", end)))
    for pos in (SIZE - 38, SIZE - 20, SIZE - 7):
        out = bytearray(BASE)
        out[pos] ^= 0x5A
        add(f"sha-{pos}", _crc_only(bytes(out)), "SHA-256")
    for value in (0, 1, 35, 0xFFFF, SIZE, SIZE - 27, 0x7FFF):
        add(f"suffix-size-{value}", _crc_only(_set(BASE, SIZE - 6, "<H", value)))
    for k in range(12):
        add(f"garbage-{k}", rng.randbytes(rng.choice([0, 1, 67, 68, 500, 11012, 70000])))
    add("all-zero", bytes(SIZE))
    add("all-ff", b"\xff" * SIZE)
    add("too-big-app", build_user_app("xenon", MAX_APP_SIZE + 4096), "at most")
    add("elf", b"\x7fELF\x02\x01\x01" + bytes(SIZE))
    add("intel-hex", b":100000000C9434000C9446000C9446000C94460061\n" * 300)
    add("zip", b"PK\x03\x04" + rng.randbytes(SIZE))
    add("text", b"this is not a firmware file\n" * 400)
    system = bytearray(bytes(0x200) + BASE)
    add("system-part-at-0x200", refresh_checksums(bytes(system)))
    add("valid-xenon", BASE, valid=True)
    add("valid-argon", build_user_app("argon", 9000), valid=True)

    sparse = root / "sparse-2g.bin"
    with open(sparse, "wb") as stream:
        stream.truncate(2 << 30)  # 2 GB of holes: must be refused by size, never read
    cases.append(Case("sparse-2g", sparse, "larger than"))
    huge = root / "huge-32m.bin"
    huge.write_bytes(BASE * (32 * 1024 * 1024 // SIZE))
    cases.append(Case("huge-32m", huge, ""))

    def special(name: str, path: Path, message: str) -> None:
        cases.append(Case(name, path, message))

    fifo = root / "fifo.bin"
    os.mkfifo(fifo)
    special("fifo", fifo, "FIFO")
    special("dev-zero", Path("/dev/zero"), "character device")
    special("dev-urandom", Path("/dev/urandom"), "character device")
    special("directory", root, "is a directory")
    (root / "dangling.bin").symlink_to(root / "nowhere.bin")
    special("dangling-link", root / "dangling.bin", "does not exist")
    (root / "to-fifo.bin").symlink_to(fifo)
    special("link-to-fifo", root / "to-fifo.bin", "FIFO")
    special("missing", root / "missing.bin", "does not exist")
    special("name-max", root / ("f" * 300 + ".bin"), "longer than the filesystem allows")
    sock_path = root / "sock.bin"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    special("socket", sock_path, "socket")
    for name in ("x[/]y.bin", "[bold]a.bin", os.fsdecode(b"\xff\xfe.bin"), "n\nl.bin"):
        path = root / "named" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_set(BASE, 100, "<B", BASE[100] ^ 1))
        cases.append(Case(f"named-{name!r}", path, "corrupt firmware"))
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Case]:
    return build_cases(tmp_path_factory.mktemp("hostile-firmware"))


def test_there_are_enough_cases(cases):
    assert len(cases) >= 200


def test_every_case_in_process_is_refused_with_a_firmware_error(cases):
    for case in cases:
        try:
            image = load_firmware(case.path)
        except FirmwareError as err:
            assert case.valid is not True, f"{case.name}: {err.message}"
            assert case.message in err.message, f"{case.name}: {err.message}"
            assert "\n" not in err.message, case.name
        except ZekeError as err:  # pragma: no cover - the wrong family still fails the test
            pytest.fail(f"{case.name}: {type(err).__name__} instead of FirmwareError: {err}")
        else:
            assert case.valid is not False, f"{case.name} was accepted ({image.size} bytes)"


def _sample(cases: list[Case]) -> list[Case]:
    picked = [c for c in cases if not c.name.startswith(("burst", "platform", "truncated"))]
    picked += [c for c in cases if c.name.startswith(("burst", "platform", "truncated"))][::6]
    return [c for c in picked if c.valid is False]


def test_a_sample_through_the_cli_is_refused_before_any_device_is_looked_for(cases):
    sample = _sample(cases)
    assert len(sample) >= 40
    for case in sample:
        ended = zeke("flash-node", case.path, "--yes", deadline=20)
        assert refused(ended), ended.describe()
        assert ended.returncode == FirmwareError.exit_code, ended.describe()
        assert "no Particle device" not in ended.stderr, ended.describe()
        assert ended.peak_rss_mb < 400, (case.name, ended.peak_rss_mb)


def test_a_markup_name_is_printed_as_written(tmp_path, sims, inject, zeke_run):
    path = tmp_path / "x[" / "]y[bold].bin"
    path.parent.mkdir()
    path.write_bytes(BASE)
    inject(sims("xenon", "1.5.2"))
    done = zeke_run("flash-node", str(path), "--yes", "--dry-run")
    assert done.code == 0, done.stderr
    assert "]y[bold].bin" in done.stdout
