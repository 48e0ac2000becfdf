"""Camera URIs: one string names any source (the jetson-inference conventions).

    v4l2:///dev/video0        a USB/UVC camera (also /dev/video0, or just 0)
    csi://0                   a CSI ribbon-cable sensor (libcamera on Pi, Argus on Jetson)
    file:///path/clip.mp4     a video file (also a plain path, absolute or relative)
    file:///path/photo.jpg    one image; a directory means every image in it, in order
    rtsp://host:554/stream    an IP camera on the LAN (frames are processed only here)
    auto                      the first discovered camera, else the bundled demo clip
    demo                      the bundled demo clip

v4l2, csi and file URIs take options as a query: ``v4l2:///dev/video0?width=1280&height=720
&fps=30&format=MJPG``, ``clip.mp4?loop=1&pace=0``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from zeke.errors import UsageError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}
)
KINDS = ("v4l2", "csi", "video", "image", "images", "rtsp", "auto", "demo")

FORMS = (
    "v4l2:///dev/video0, csi://0, file:///path/clip.mp4 (or a plain path to a video, an image "
    "or a directory of images), rtsp://host/stream, auto or demo"
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)


def _as_bool(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"URI option {key}={value!r} is not a yes/no value", hint=f"use {key}=1 or 0")


def _as_positive(cast: type):
    def convert(key: str, value: str) -> Any:
        try:
            number = cast(value)
        except ValueError:
            number = None
        if number is None or number <= 0:
            raise UsageError(
                f"URI option {key}={value!r} must be a positive {cast.__name__}",
                hint=f"for example {key}={'640' if cast is int else '30'}",
            )
        return number

    return convert


def _as_fourcc(key: str, value: str) -> str:
    if len(value) != 4 or not value.isascii():
        raise UsageError(
            f"URI option {key}={value!r} is not a four-character pixel format",
            hint="for example format=MJPG or format=YUYV",
        )
    return value.upper()


#: options a URI query may carry, and how to read each
OPTIONS = {
    "width": _as_positive(int),
    "height": _as_positive(int),
    "fps": _as_positive(float),
    "format": _as_fourcc,
    "loop": _as_bool,
    "pace": _as_bool,
}


@dataclass(frozen=True)
class SourceSpec:
    """A parsed URI: which kind of source, what it points at, and options from its query."""

    uri: str
    kind: str
    target: str  # a device path, a sensor index, a file or directory path, or a URL
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.target)


def _query_options(query: str, uri: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(
                f"unknown option '{key}' in camera URI {redact(uri)}",
                hint=f"{hint}allowed: {', '.join(OPTIONS)}",
            )
        options[key] = OPTIONS[key](key, value)
    return options


def _split_query(rest: str) -> tuple[str, str]:
    target, _, query = rest.partition("?")
    return target, query


def _file_kind(path: Path) -> str:
    if path.is_dir():
        return "images"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return "video"


def parse_uri(uri: str) -> SourceSpec:
    """Parse a camera URI, or raise ``UsageError`` saying which forms are accepted."""
    text = (uri or "").strip()
    if not text:
        raise UsageError("empty camera URI", hint=f"use one of: {FORMS}")
    if text in ("auto", "demo"):
        return SourceSpec(text, text, "")
    match = _SCHEME.match(text)
    if match is None:
        if text.isdigit():
            return SourceSpec(text, "v4l2", f"/dev/video{int(text)}")
        if text.startswith("/dev/video"):
            return SourceSpec(text, "v4l2", text)
        path = Path(text).expanduser()
        return SourceSpec(text, _file_kind(path), str(path))
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "v4l2":
        target, query = _split_query(rest)
        if target.isdigit():
            target = f"/dev/video{int(target)}"
        if not target.startswith("/"):
            raise UsageError(
                f"camera URI {text!r} names no device",
                hint="write v4l2:///dev/video0 (three slashes: the device path is absolute)",
            )
        return SourceSpec(text, "v4l2", target, _query_options(query, text))
    if scheme == "csi":
        target, query = _split_query(rest)
        if not target.isdigit():
            raise UsageError(
                f"camera URI {text!r} needs a sensor number",
                hint="write csi://0 for the first CSI camera, csi://1 for the second",
            )
        return SourceSpec(text, "csi", str(int(target)), _query_options(query, text))
    if scheme == "file":
        target, query = _split_query(rest)
        if not target:
            raise UsageError(f"camera URI {text!r} names no file", hint="file:///path/clip.mp4")
        path = Path(target).expanduser()
        return SourceSpec(text, _file_kind(path), str(path), _query_options(query, text))
    if scheme in ("rtsp", "rtsps"):
        if not urlsplit(text).hostname:
            raise UsageError(
                f"camera URI {redact(text)!r} names no host", hint="rtsp://192.168.1.20:554/stream"
            )
        return SourceSpec(text, "rtsp", text)
    raise UsageError(f"unsupported camera URI scheme '{scheme}://'", hint=f"use one of: {FORMS}")


def redact(uri: str) -> str:
    """The URI with any password replaced, fit for logs, events and ``describe()``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
