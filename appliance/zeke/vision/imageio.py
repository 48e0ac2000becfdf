"""Reading still images safely: every way a file can be unusable gets its own clear error.

The pixel count is read from the header *before* decoding, so a decompression bomb is
refused without allocating it; truncated JPEG/PNG files are refused instead of being
decoded into half-grey pictures.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from zeke.errors import InputError

MAX_PIXELS = 64_000_000  # ~8000x8000; far above any camera zeke reads
MIN_SIDE = 16  # smaller than this cannot hold a detectable face
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def header_size(data: bytes) -> tuple[str, tuple[int, int] | None]:
    """(format, (width, height) or None) from the first bytes of an image file."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg", _jpeg_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return "png", (w, h)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return "bmp", (abs(w), abs(h))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", None
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff", None
    if data[:2] in (b"P5", b"P6"):
        parts = data[:64].split()
        if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            return "pnm", (int(parts[1]), int(parts[2]))
        return "pnm", None
    return "unknown", None


def _truncated(fmt: str, data: bytes) -> bool:
    if fmt == "jpeg":
        return b"\xff\xd9" not in data[-1024:]
    if fmt == "png":
        return b"IEND" not in data[-64:]
    return False


def decode_image(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to BGR uint8, refusing anything zeke cannot use."""
    import cv2

    if not data:
        raise InputError(
            f"{source}: the file is empty (0 bytes)", hint="check the file was copied completely"
        )
    fmt, size = header_size(data)
    if fmt == "unknown":
        raise InputError(
            f"{source}: not an image (no JPEG, PNG, BMP, WebP, TIFF or PNM header)",
            hint="pass a photo file such as .jpg or .png",
        )
    if size is not None:
        w, h = size
        if w * h > max_pixels:
            raise InputError(
                f"{source}: image is {w}x{h} ({w * h / 1e6:.0f} MP), "
                f"over the {max_pixels / 1e6:.0f} MP limit",
                hint="scale the image down first",
            )
    if _truncated(fmt, data):
        raise InputError(
            f"{source}: the {fmt.upper()} file is truncated", hint="copy the file again"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{source}: the {fmt.upper()} data is corrupt and cannot be decoded")
    h, w = image.shape[:2]
    if w * h > max_pixels:
        raise InputError(f"{source}: image is {w}x{h}, over the {max_pixels / 1e6:.0f} MP limit")
    if min(w, h) < MIN_SIDE:
        raise InputError(
            f"{source}: image is only {w}x{h} pixels, too small to hold a face",
            hint=f"images need at least {MIN_SIDE} pixels a side",
        )
    return image


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode one image file with clear errors for every failure."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file", hint="check the path")
    if p.is_dir():
        raise InputError(
            f"{p}: is a directory, not an image", hint="pass the image files inside it"
        )
    try:
        data = p.read_bytes()
    except PermissionError:
        raise InputError(f"{p}: permission denied", hint="check the file's permissions") from None
    except OSError as err:
        raise InputError(f"{p}: cannot be read ({err.strerror})") from None
    return decode_image(data, str(p), max_pixels)
