"""Reading still images safely: every way a file can be unusable gets its own clear error.

The file is opened as a regular file of bounded size (``zeke.inputs``), so FIFOs, devices
and over-long names are refused before a byte is read. The image size is then read from the
header of every format zeke accepts *before* decoding, so a decompression bomb is refused
without allocating it, and a batch goes on with its next file. OpenCV reads these headers
only inside ``imdecode`` (after it has committed to decoding) and Pillow is not a runtime
dependency, so the few bytes that hold the size are parsed here; anything whose size cannot
be read is refused rather than handed to the decoder. Truncated JPEG/PNG files are refused
instead of being decoded into half-grey pictures.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from zeke.errors import InputError
from zeke.inputs import read_regular, shown

#: Decoding costs up to ~9 bytes a pixel at its peak (a progressive JPEG keeps every DCT
#: coefficient, 16-bit PNG/TIFF are expanded then converted) and the pipeline holds one more
#: copy, so 24 MP keeps ``zeke detect`` under 400 MB; it is twice the largest camera zeke reads.
MAX_PIXELS = 24_000_000
MAX_FILE_BYTES = 96 * 1024 * 1024  # an uncompressed 24 MP 8-bit RGB BMP/TIFF is 72 MB
MIN_SIDE = 16  # smaller than this cannot hold a detectable face
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")

Size = tuple[int, int]


class _Corrupt(Exception):
    """A header that cannot be read (the caller names the file and format)."""


def _jpeg_size(data: bytes) -> Size:
    """Width and height from the first SOF segment (walking segments by their lengths)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise _Corrupt("no marker where one should be")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            raise _Corrupt("no frame header before the image data")
        length = struct.unpack_from(">H", data, i + 2)[0]
        if length < 2:
            raise _Corrupt("a segment with an impossible length")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            h, w = struct.unpack_from(">HH", data, i + 5)
            return w, h
        i += 2 + length
    raise _Corrupt("no frame header")


def _png_size(data: bytes) -> Size:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _Corrupt("no IHDR chunk")
    w, h = struct.unpack_from(">II", data, 16)
    return w, h


def _bmp_size(data: bytes) -> Size:
    if len(data) < 26:
        raise _Corrupt("the header is cut short")
    dib = struct.unpack_from("<I", data, 14)[0]
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit unsigned sizes
        w, h = struct.unpack_from("<HH", data, 18)
        return w, h
    if dib < 40:
        raise _Corrupt(f"an unknown DIB header of {dib} bytes")
    w, h = struct.unpack_from("<ii", data, 18)
    if w <= 0:
        raise _Corrupt(f"width {w}")
    return w, abs(h)


def _webp_size(data: bytes) -> Size:
    if len(data) < 30:
        raise _Corrupt("the header is cut short")
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas size, 24 bits each, minus one
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":  # lossless: signature 0x2F, then 14 bits each, minus one
        if data[20] != 0x2F:
            raise _Corrupt("a lossless stream without its signature")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14 bits each (+ 2 scale bits)
        if data[23:26] != b"\x9d\x01\x2a":
            raise _Corrupt("a lossy stream without a key frame")
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    raise _Corrupt(f"an unknown first chunk {chunk!r}")


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4)}  # SHORT, LONG: the types a width or length may have


def _tiff_size(data: bytes) -> Size:
    """ImageWidth and ImageLength from the first IFD (the page OpenCV decodes)."""
    e = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        raise _Corrupt("the header is cut short")
    offset = struct.unpack_from(e + "I", data, 4)[0]
    if offset < 8 or offset + 2 > len(data):
        raise _Corrupt("the first directory lies outside the file")
    count = struct.unpack_from(e + "H", data, offset)[0]
    if offset + 2 + 12 * count > len(data):
        raise _Corrupt("the first directory is cut short")
    found: dict[int, int] = {}
    for k in range(count):
        tag, kind, n = struct.unpack_from(e + "HHI", data, offset + 2 + 12 * k)
        if tag in (256, 257) and kind in _TIFF_TYPES and n == 1:
            code, _ = _TIFF_TYPES[kind]
            found[tag] = struct.unpack_from(e + code, data, offset + 2 + 12 * k + 8)[0]
    if 256 not in found or 257 not in found:
        raise _Corrupt("no image width or length")
    return found[256], found[257]


def _pnm_size(data: bytes) -> Size:
    """Width and height of a binary PGM/PPM (tokens after the magic; ``#`` comments skipped)."""
    tokens: list[bytes] = []
    i, n = 2, min(len(data), 4096)
    if i >= n or data[i : i + 1] not in b" \t\r\n":
        raise _Corrupt("no whitespace after the magic number")
    while len(tokens) < 3 and i < n:
        c = data[i : i + 1]
        if c in b" \t\r\n":
            i += 1
        elif c == b"#":
            while i < n and data[i : i + 1] not in b"\r\n":
                i += 1
        else:
            start = i
            while i < n and data[i : i + 1] not in b" \t\r\n#":
                i += 1
            tokens.append(data[start:i])
    if len(tokens) < 3 or not all(t.isdigit() and len(t) <= 9 for t in tokens):
        raise _Corrupt("no width, height and maximum value")
    w, h, maxval = map(int, tokens)
    if not 0 < maxval <= 255:
        raise _Corrupt(f"maximum value {maxval} (zeke reads 8-bit PGM/PPM)")
    return w, h


_FORMATS = (  # (name, test on the first bytes, size reader): only these reach the decoder
    ("jpeg", lambda d: d[:3] == b"\xff\xd8\xff", _jpeg_size),
    ("png", lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png_size),
    ("bmp", lambda d: d[:2] == b"BM", _bmp_size),
    ("webp", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp_size),
    ("tiff", lambda d: d[:4] in (b"II*\x00", b"MM\x00*"), _tiff_size),
    ("pnm", lambda d: d[:2] in (b"P5", b"P6"), _pnm_size),
)


def _identify(data: bytes):
    """(format name, size reader) of the first format whose magic ``data`` starts with."""
    return next(((name, size) for name, test, size in _FORMATS if test(data)), (None, None))


def header_size(data: bytes) -> tuple[str, Size | None]:
    """(format, (width, height) or None when the header cannot be read) from a file's bytes."""
    fmt, size = _identify(data)
    if fmt is None:
        return "unknown", None
    try:
        return fmt, size(data)
    except (_Corrupt, struct.error, IndexError):
        return fmt, None


def image_header(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> tuple[str, Size]:
    """(format, (width, height)) of an image zeke may decode; ``InputError`` for anything else."""
    if not data:
        raise InputError(
            f"{source}: the file is empty (0 bytes)", hint="check the file was copied completely"
        )
    fmt, size = _identify(data)
    if fmt is None:
        raise InputError(
            f"{source}: not an image (no JPEG, PNG, BMP, WebP, TIFF or PNM header)",
            hint="pass a photo file such as .jpg or .png",
        )
    try:
        w, h = size(data)
    except (_Corrupt, struct.error, IndexError) as err:
        reason = str(err) if isinstance(err, _Corrupt) else "the header is cut short"
        raise InputError(
            f"{source}: the {fmt.upper()} header cannot be read ({reason})",
            hint="the file is corrupt or truncated; copy it again",
        ) from None
    if w * h > max_pixels:
        raise InputError(
            f"{source}: image is {w}x{h} ({w * h / 1e6:.0f} MP), "
            f"over the {max_pixels / 1e6:.0f} MP limit",
            hint="scale the image down first",
        )
    if min(w, h) < MIN_SIDE:
        raise InputError(
            f"{source}: image is only {w}x{h} pixels, too small to hold a face",
            hint=f"images need at least {MIN_SIDE} pixels a side",
        )
    return fmt, (w, h)


def _truncated(fmt: str, data: bytes) -> bool:
    if fmt == "jpeg":
        return b"\xff\xd9" not in data[-1024:]
    if fmt == "png":
        return b"IEND" not in data[-64:]
    return False


def decode_image(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to BGR uint8, refusing anything zeke cannot use."""
    import cv2

    fmt, _ = image_header(data, source, max_pixels)
    if _truncated(fmt, data):
        raise InputError(
            f"{source}: the {fmt.upper()} file is truncated", hint="copy the file again"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # the decoder's own checks (sizes past its limits, broken streams)
        image = None
    if image is None:
        raise InputError(
            f"{source}: the {fmt.upper()} data is corrupt and cannot be decoded",
            hint="copy the file again, or re-save it with an image editor",
        )
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
    data = read_regular(
        path, "image", max_bytes=MAX_FILE_BYTES, hint="pass an image file (JPEG, PNG, ...)"
    )
    return decode_image(data, shown(path), max_pixels)
