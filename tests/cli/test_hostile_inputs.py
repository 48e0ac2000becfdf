"""Hostile images and special paths for ``zeke detect`` and the image camera of ``zeke watch``.

Every case is generated into tmp_path: truncated and corrupt files of each format zeke
decodes, decompression bombs (real ones and headers that merely claim huge sizes), images
just under the pixel limit in their most expensive encodings, wrong extensions, FIFOs,
devices, directories, sockets, broken links, over-long names, names with rich markup,
control characters or bytes that are not UTF-8. Each one goes through ``read_image`` (what
``zeke detect`` calls) in-process, where only ``InputError`` may come out, and all of them go
through real ``zeke detect`` batches with a good photo after every bad file: the good ones
must still be processed, every bad one gets its own error, and the child's peak RSS (from
``wait4``) stays under 400 MB.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.hostile import refused, zeke
from zeke.errors import InputError
from zeke.resources import sample_photos
from zeke.vision.imageio import MAX_PIXELS, read_image

RSS_LIMIT_MB = 400
GOOD = sample_photos()[0]


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    refuse: bool | None  # True: must be refused; False: must decode; None: either, cleanly
    message: str = ""


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_claiming(w: int, h: int, depth: int = 8, color: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(jpeg: bytes, w: int, h: int) -> bytes:
    """A real JPEG with its SOF frame size rewritten."""
    out = bytearray(jpeg)
    i = 2
    while i < len(out):
        marker = out[i + 1]
        length = struct.unpack(">H", out[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", out, i + 5, h, w)
            return bytes(out)
        i += 2 + length
    raise AssertionError("no SOF")


def tiff_claiming(w: int, h: int, *, big_endian: bool = False, bits: int = 8) -> bytes:
    e = ">" if big_endian else "<"
    entries = [
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 1, bits),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 200),
        (277, 3, 1, 1),
        (278, 4, 1, h),
        (279, 4, 1, 64),
    ]
    ifd = struct.pack(e + "H", len(entries))
    for tag, kind, count, value in entries:
        if kind == 3:
            ifd += struct.pack(e + "HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack(e + "HHII", tag, kind, count, value)
    ifd += b"\0\0\0\0"
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", 8)
    body = head + ifd
    return body + b"\0" * (200 - len(body)) + b"\x55" * 64


def bmp_claiming(w: int, h: int, core: bool = False) -> bytes:
    if core:
        dib = struct.pack("<IHHHH", 12, w, h, 1, 24)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + 64, 0, 0, 14 + len(dib)) + dib + b"\0" * 64


def webp_vp8x_claiming(w: int, h: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (w - 1).to_bytes(3, "little")
    body += (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def webp_vp8l_claiming(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 16
    body = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def webp_vp8_claiming(webp: bytes, w: int, h: int) -> bytes:
    out = bytearray(webp)
    at = out.find(b"\x9d\x01\x2a")
    assert at > 0
    struct.pack_into("<HH", out, at + 3, w & 0x3FFF, h & 0x3FFF)
    return bytes(out)


def gif_claiming(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + b"\x3b"


def build_cases(root: Path) -> list[Case]:
    """Every hostile image and special path, written under ``root``."""
    rng = random.Random(13)
    photo = cv2.imread(str(GOOD))
    cases: list[Case] = []
    n = 0

    def add(name: str, data: bytes, suffix: str, refuse: bool | None, message: str = "") -> None:
        nonlocal n
        n += 1
        path = root / f"{n:03d}-{name}{suffix}"
        path.write_bytes(data)
        cases.append(Case(name, path, refuse, message))

    encoded = {
        "jpeg": (".jpg", cv2.imencode(".jpg", photo)[1].tobytes()),
        "png": (".png", cv2.imencode(".png", photo)[1].tobytes()),
        "webp": (
            ".webp",
            cv2.imencode(".webp", photo, [cv2.IMWRITE_WEBP_QUALITY, 80])[1].tobytes(),
        ),
        "webp-lossless": (
            ".webp",
            cv2.imencode(".webp", photo, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
        ),
        "tiff": (".tif", cv2.imencode(".tiff", photo)[1].tobytes()),
        "bmp": (".bmp", cv2.imencode(".bmp", photo)[1].tobytes()),
        "ppm": (".ppm", cv2.imencode(".ppm", photo)[1].tobytes()),
        "pgm": (".pgm", cv2.imencode(".pgm", cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))[1].tobytes()),
    }
    for fmt, (suffix, data) in encoded.items():
        for frac in (0.0005, 0.01, 0.3, 0.7):
            add(f"{fmt}-truncated-{frac}", data[: max(1, int(len(data) * frac))], suffix, True)
        add(f"{fmt}-one-byte-short", data[:-1], suffix, None)
        for k in range(2):
            bad = bytearray(data)
            at = rng.randrange(len(bad) // 4, len(bad) - 64)
            bad[at : at + 48] = rng.randbytes(48)
            add(f"{fmt}-corrupt-{k}", bytes(bad), suffix, None)
        add(f"{fmt}-magic-then-noise", data[:4] + rng.randbytes(4000), suffix, True)
        add(f"{fmt}-header-only", data[:40], suffix, True)
        add(f"{fmt}-empty", b"", suffix, True, "empty")
    add("png-as-jpg", encoded["png"][1], ".jpg", False)
    add("jpeg-as-tif", encoded["jpeg"][1], ".tif", False)
    add("text-as-png", b"hello, this is not a picture\n" * 20, ".png", True, "not an image")
    add("zip-as-jpg", b"PK\x03\x04" + rng.randbytes(500), ".jpg", True, "not an image")
    add("elf-as-jpg", b"\x7fELF" + rng.randbytes(500), ".jpg", True, "not an image")
    add("gif", gif_claiming(64, 64), ".gif", True)
    add("gif-bomb", gif_claiming(65535, 65535), ".gif", True)
    add("bigtiff", b"II+\0" + rng.randbytes(200), ".tif", True)

    limit = f"over the {MAX_PIXELS // 1_000_000} MP limit"
    jpeg = encoded["jpeg"][1]
    for w, h in ((65500, 65500), (40000, 40000), (6000, 6000)):
        add(f"jpeg-claims-{w}x{h}", jpeg_claiming(jpeg, w, h), ".jpg", True, limit)
    for w, h in ((65500, 17), (17, 65500)):  # under the limit: decodes as grey, or is refused
        add(f"jpeg-claims-{w}x{h}", jpeg_claiming(jpeg, w, h), ".jpg", None)
    add("jpeg-claims-0x0", jpeg_claiming(jpeg, 0, 0), ".jpg", True)
    add("jpeg-claims-0-height", jpeg_claiming(jpeg, 512, 0), ".jpg", True)
    add(
        "jpeg-no-sof",
        jpeg[:2] + b"\xff\xe0\x00\x10" + b"JFIF\0" + b"\0" * 9 + b"\xff\xd9",
        ".jpg",
        True,
    )
    for w, h, depth, color in (
        (100000, 100000, 8, 2),
        (40000, 40000, 16, 6),
        (2**31 - 1, 2**31 - 1, 8, 2),
        (1 << 20, 1, 8, 0),
        (0, 0, 8, 2),
        (5000, 0, 8, 2),
    ):
        add(f"png-claims-{w}x{h}", png_claiming(w, h, depth, color), ".png", True)
    for w, h in ((40000, 40000), (65536, 65536), (2**32 - 1, 2**32 - 1), (0, 10), (20000, 20000)):
        add(f"tiff-claims-{w}x{h}", tiff_claiming(w, h), ".tif", True)
        add(f"tiff-be-claims-{w}x{h}", tiff_claiming(w, h, big_endian=True), ".tiff", True)
    add("tiff-loop-ifd", b"II*\0\x08\0\0\0" + b"\0\0" + b"\x08\0\0\0", ".tif", True)
    add("tiff-ifd-past-end", b"II*\0" + struct.pack("<I", 1 << 30) + b"\0" * 32, ".tif", True)
    for w, h, core in (
        (30000, 30000, False),
        (-30000, -30000, False),
        (65535, 65535, True),
        (0, 100, False),
        (2**31 - 1, 1, False),
    ):
        add(f"bmp-claims-{w}x{h}{'-core' if core else ''}", bmp_claiming(w, h, core), ".bmp", True)
    for w, h in ((16384, 16384), (16384, 1), (9000, 9000)):
        add(f"webp-vp8x-claims-{w}x{h}", webp_vp8x_claiming(w, h), ".webp", True)
        add(f"webp-vp8l-claims-{w}x{h}", webp_vp8l_claiming(w, h), ".webp", True)
    add("webp-vp8-claims-16383", webp_vp8_claiming(encoded["webp"][1], 16383, 16383), ".webp", True)
    for header in (
        b"P6\n30000 30000\n255\n",
        b"P5 # a comment\n#another\n20000 20000 255\n",
        b"P6\n99999999999999999999 1\n255\n",
        b"P6\n512 512\n65535\n",
        b"P5\n-5 5\n255\n",
    ):
        add(f"pnm-{header[:2].decode()}-{len(cases)}", header + b"\0" * 512, ".ppm", True)

    # real bombs: small files that decode to far more pixels than the limit
    add(
        "real-png-bomb",
        cv2.imencode(".png", np.zeros((9000, 9000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[
            1
        ].tobytes(),
        ".png",
        True,
        limit,
    )
    big = np.zeros((8200, 8200, 3), np.uint8)
    add(
        "real-webp-bomb",
        cv2.imencode(".webp", big, [cv2.IMWRITE_WEBP_QUALITY, 1])[1].tobytes(),
        ".webp",
        True,
        limit,
    )
    add(
        "real-jpeg-bomb",
        cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        ".jpg",
        True,
        limit,
    )
    add("real-tiff-bomb", cv2.imencode(".tiff", big)[1].tobytes(), ".tif", True, limit)
    del big
    # just under the limit, in the encodings that cost the most to decode
    side = int(MAX_PIXELS**0.5) - 8
    near = np.zeros((side, side, 3), np.uint8)
    near[::7, ::5] = 200
    add(
        "near-limit-progressive-444",
        cv2.imencode(
            ".jpg",
            near,
            [
                cv2.IMWRITE_JPEG_PROGRESSIVE,
                1,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            ],
        )[1].tobytes(),
        ".jpg",
        None,
    )
    add(
        "near-limit-png16-rgba",
        cv2.imencode(
            ".png", np.zeros((side, side, 4), np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9]
        )[1].tobytes(),
        ".png",
        None,
    )
    add(
        "near-limit-webp-lossless",
        cv2.imencode(".webp", near, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
        ".webp",
        None,
    )
    add(
        "near-limit-tiff16",
        cv2.imencode(".tiff", near.astype(np.uint16))[1].tobytes(),
        ".tif",
        None,
    )
    del near

    # special paths
    def special(name: str, path: Path, message: str) -> None:
        cases.append(Case(name, path, True, message))

    fifo = root / "fifo.jpg"
    os.mkfifo(fifo)
    special("fifo", fifo, "FIFO")
    special("dev-zero", Path("/dev/zero"), "character device")
    special("dev-null", Path("/dev/null"), "")  # a regular file in some containers
    special("dev-urandom", Path("/dev/urandom"), "character device")
    special("directory", root, "is a directory")
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    special("dangling-link", root / "dangling.jpg", "does not exist")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    special("link-loop", root / "loop.jpg", "symbolic links")
    (root / "to-fifo.jpg").symlink_to(fifo)
    special("link-to-fifo", root / "to-fifo.jpg", "FIFO")
    special("missing", root / "missing.jpg", "no such file")
    special("not-a-dir", root / "001-jpeg-truncated-0.0005.jpg" / "x.jpg", "not a directory")
    special("name-max", root / ("n" * 256 + ".jpg"), "longer than the filesystem allows")
    special("path-max", root / "/".join(["d" * 200] * 25) / "x.jpg", "longer than the system")
    sock_path = root / "sock.jpg"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    special("socket", sock_path, "socket")
    good = GOOD.read_bytes()
    for name in (
        "x[/]y.jpg",
        "[bold]b[/bold].jpg",
        "[link=file:///etc/passwd]l[/link].jpg",
        "a\\[/]b.jpg",
        "[red]",
        "tab\tname.jpg",
        "new\nline.jpg",
        "esc\x1b[2Jx.jpg",
        "ünï©ødé.jpg",
        os.fsdecode(b"bad-\xff\xfe-utf8.jpg"),
    ):
        path = root / "named" / name  # a "/" in a name is a directory: x[ / ]y.jpg
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(good)
        cases.append(Case(f"named-{name!r}", path, False))
    (root / "[x]dir").mkdir()
    special("markup-directory", root / "[x]dir", "is a directory")
    special("markup-missing", root / "[/]missing.jpg", "no such file")
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Case]:
    return build_cases(tmp_path_factory.mktemp("hostile-images"))


def test_there_are_enough_cases(cases):
    assert len(cases) >= 100
    assert sum(c.refuse is True for c in cases) >= 90


def test_every_case_in_process_is_an_input_error_or_an_image(cases):
    outcomes: dict[str, str] = {}
    for case in cases:
        try:
            image = read_image(case.path)
        except InputError as err:
            assert "\n" not in err.message, case.name
            assert case.refuse is not False, f"{case.name}: {err.message}"
            assert case.message in err.message, f"{case.name}: {err.message}"
            outcomes[case.name] = "refused"
        else:
            assert case.refuse is not True, f"{case.name} decoded to {image.shape}"
            h, w = image.shape[:2]
            assert w * h <= MAX_PIXELS
            outcomes[case.name] = "decoded"
    assert len(outcomes) == len({c.name for c in cases})


def _batches(cases: list[Case], size: int = 18) -> list[list[Case]]:
    return [cases[i : i + size] for i in range(0, len(cases), size)]


@pytest.mark.parametrize("mode", ["json", "human"])
def test_detect_batches_keep_going_and_stay_small(cases, mode):
    """Each bad file gets its error, the good photo after it still runs, RSS stays < 400 MB."""
    for batch in _batches(cases):
        argv: list[str | Path] = ["detect"] + (["--json"] if mode == "json" else [])
        for case in batch:
            argv += [case.path, GOOD]
        ended = zeke(*argv)
        assert not ended.hung and not ended.traceback, ended.describe()
        assert ended.peak_rss_mb < RSS_LIMIT_MB, (ended.peak_rss_mb, [c.name for c in batch])
        must_fail = any(c.refuse for c in batch)
        assert ended.returncode == (3 if must_fail else ended.returncode), ended.describe()
        if mode == "json":
            docs = [json.loads(line) for line in ended.stdout.splitlines()]
            assert len(docs) == 2 * len(batch), ended.describe()
            for case, bad, good in zip(batch, docs[::2], docs[1::2]):
                assert good["source"] == str(GOOD) and len(good["faces"]) == 1, case.name
                if case.refuse:
                    assert case.message in bad["error"], (case.name, bad)
                elif case.refuse is False:
                    assert "faces" in bad, (case.name, bad)
        else:
            errors = [ln for ln in ended.stderr.splitlines() if ln.startswith("error:")]
            assert len(errors) >= sum(bool(c.refuse) for c in batch), ended.stderr
            assert ended.stdout.count(f"{GOOD}  ") == len(batch), ended.stdout


@pytest.mark.parametrize(
    "name",
    [
        "real-webp-bomb",
        "real-jpeg-bomb",
        "real-tiff-bomb",
        "tiff-claims-40000x40000",
        "near-limit-progressive-444",
        "near-limit-png16-rgba",
        "fifo",
        "dev-zero",
    ],
)
def test_heavy_cases_alone_stay_small(cases, name):
    (case,) = [c for c in cases if c.name == name]
    ended = zeke("detect", case.path)
    assert not ended.hung and not ended.traceback, ended.describe()
    assert ended.peak_rss_mb < RSS_LIMIT_MB, ended.peak_rss_mb
    if case.refuse:
        assert refused(ended), ended.describe()


def test_dev_zero_under_a_memory_limit_is_refused():
    ended = zeke("detect", "/dev/zero", memory_limit_mb=2048)
    assert refused(ended), ended.describe()
    assert "character device" in ended.stderr


def test_markup_in_a_path_is_printed_as_written(tmp_path):
    path = tmp_path / "x[/]y[bold].jpg"
    path.parent.mkdir()
    path.write_bytes(GOOD.read_bytes())
    missing = tmp_path / "[red]gone[/].jpg"
    ended = zeke("detect", path, missing)
    assert ended.returncode == 3 and not ended.traceback, ended.describe()
    assert f"{path}  " in ended.stdout
    assert f"{missing}: no such file" in ended.stderr


@pytest.mark.parametrize("name", ["real-webp-bomb", "tiff-claims-40000x40000", "fifo"])
def test_watch_refuses_a_bad_image_camera(cases, name):
    (case,) = [c for c in cases if c.name == name]
    ended = zeke("watch", "--camera", f"file://{case.path}", "--frames", "3", "--json")
    assert refused(ended), ended.describe()
    assert ended.peak_rss_mb < RSS_LIMIT_MB, ended.peak_rss_mb


def test_watch_refuses_a_fifo_video_camera(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    ended = zeke("watch", "--camera", f"file://{fifo}", "--frames", "3", "--json", deadline=20)
    assert refused(ended), ended.describe()
    assert "FIFO" in ended.stderr


def test_ctrl_c_while_watch_starts_exits_130_quietly(tmp_path):
    """SIGINT at many points of ``zeke watch`` starting up: never a traceback, never a hang.

    Each child is interrupted at a growing delay after zeke's own code began (the
    interpreter's start before that is CPython's). A child that dies *by* SIGINT (returncode
    -2) is what a shell reports as 130 too; CPython ends that way after an interrupt that
    passed through code a C extension evaluated.
    """
    import signal
    import subprocess
    import sys
    import time

    outcomes = []
    for step in range(16):
        delay = 0.07 * step
        err = tmp_path / f"err-{step}"
        with open(err, "wb") as stream:
            child = subprocess.Popen(
                [sys.executable, "-X", "importtime", "-m", "zeke", "watch", "--demo",
                 "--frames", "400", "--json"],
                stdout=subprocess.DEVNULL,
                stderr=stream,
                cwd=tmp_path,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while not re.search(r"\|\s+zeke\.errors\n", err.read_text(errors="replace")):
                assert time.monotonic() < deadline and child.poll() is None
                time.sleep(0.005)
            time.sleep(delay)  # zeke.cli.main is importing the commands by now
            child.send_signal(signal.SIGINT)
            try:
                code = child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                pytest.fail(f"zeke watch hung after Ctrl-C at {delay:.2f} s")
        text = err.read_text(errors="replace")
        assert "Traceback" not in text, f"at {delay:.2f} s:\n{text[-3000:]}"
        assert "error:" not in text, f"at {delay:.2f} s:\n{text[-3000:]}"
        outcomes.append(code)
    assert set(outcomes) <= {130, -signal.SIGINT, 0}, outcomes
    assert any(code in (130, -signal.SIGINT) for code in outcomes), outcomes


_NO_PAHO = '''
import importlib.abc, sys

class NoPaho(importlib.abc.MetaPathFinder):
    """An install without the mqtt extra: paho cannot be found."""

    def find_spec(self, name, path=None, target=None):
        if name == "paho" or name.startswith("paho."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPaho())
'''


def test_doctor_without_the_mqtt_extra_reports_it_missing(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_PAHO)
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "ZEKE_CONFIG": str(tmp_path / "etc" / "zeke.toml"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "ZEKE_STATE_DIR": str(tmp_path / "state"),
    }
    probe = zeke("doctor", "--json", env=env)
    assert not probe.traceback and not probe.hung, probe.describe()
    report = json.loads(probe.stdout)
    checks = report["checks"] if isinstance(report, dict) else report
    extras = next(c for c in checks if c["id"] == "extras")
    assert extras["status"] in ("pass", "warn"), extras
    assert "paho-mqtt" in extras["detail"].split("missing:")[1], extras
