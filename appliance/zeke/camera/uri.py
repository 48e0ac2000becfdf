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

Everything that can be checked without opening the camera is checked here, so a bad URI is a
``UsageError`` when the config is validated or the command line read, not a traceback when the
camera opens: ports, host names, path and name lengths, ``~user``, option values and ranges.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
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

#: Longest URI accepted (a camera URI is a device, a path or a short URL).
MAX_URI = 4096
#: The kernel's limits (Linux) on a whole path and on one name in it, in bytes.
PATH_MAX = 4095
NAME_MAX = 255
#: Highest CSI sensor number (boards have 1 to 6 connectors).
MAX_CSI = 15
#: Option ranges, the same as the [camera] section's.
LIMITS = {"width": 7680, "height": 4320, "fps": 240.0}

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _shown(uri: str, limit: int = 80) -> str:
    """The URI as it may be printed: password redacted, cut short, control characters escaped."""
    text = repr(redact(uri))
    return text if len(text) <= limit else text[: limit - 1] + f"…' ({len(uri)} characters)"


def _as_bool(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"URI option {key}={value!r} is not a yes/no value", hint=f"use {key}=1 or 0")


_NUMBER = {
    int: re.compile(r"\+?[0-9]{1,9}"),
    float: re.compile(r"\+?([0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9})"),
}


def _as_positive(cast: type):
    def convert(key: str, value: str) -> Any:
        number = cast(value) if _NUMBER[cast].fullmatch(value.strip()) else None
        top = LIMITS.get(key, math.inf)
        if number is None or not 0 < number <= top:
            shown = value if len(value) <= 20 else value[:19] + "…"
            raise UsageError(
                f"URI option {key}={shown!r} must be a positive {cast.__name__}"
                + (f" of at most {top:g}" if top != math.inf else ""),
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
            close = difflib.get_close_matches(key[:64], OPTIONS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(
                f"unknown option {key[:40]!r} in camera URI {_shown(uri)}",
                hint=f"{hint}allowed: {', '.join(OPTIONS)}",
            )
        options[key] = OPTIONS[key](key, value)
    return options


def _split_query(rest: str) -> tuple[str, str]:
    target, _, query = rest.partition("?")
    return target, query


def _file_kind(path: Path) -> str:
    try:
        is_dir = path.is_dir()
    except OSError:  # a loop, a name the kernel refuses: the open will say what is wrong
        is_dir = False
    if is_dir:
        return "images"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return "video"


def _file_path(target: str, uri: str) -> Path:
    """A file path from a URI: ``~`` expanded, within the kernel's length limits."""
    if target.startswith("~"):
        try:
            path = Path(target).expanduser()
        except RuntimeError:
            user = target[1:].split("/", 1)[0]
            raise UsageError(
                f"camera URI {_shown(uri)}: "
                + (f"there is no user {user[:40]!r}" if user else "there is no home directory"),
                hint="give the full path, e.g. /home/pi/clip.mp4",
            ) from None
    else:
        path = Path(target)
    encoded = os.fsencode(str(path))
    if len(encoded) > PATH_MAX:
        raise UsageError(
            f"camera URI {_shown(uri)}: the path is {len(encoded)} bytes long",
            hint=f"a path may have at most {PATH_MAX} bytes",
        )
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX:
        raise UsageError(
            f"camera URI {_shown(uri)}: a name in the path is {longest} bytes long",
            hint=f"a file name may have at most {NAME_MAX} bytes; rename the file",
        )
    return path


def _device_path(target: str, uri: str) -> str:
    if len(os.fsencode(target)) > PATH_MAX or any(
        len(part) > NAME_MAX for part in os.fsencode(target).split(b"/")
    ):
        raise UsageError(
            f"camera URI {_shown(uri)}: the device path is too long",
            hint="v4l2:///dev/video0, or a name under /dev/v4l/by-id/",
        )
    return target


def _network(text: str) -> None:
    """Host and port of an rtsp:// URI, checked as far as possible without the network."""
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError as err:
        raise UsageError(
            f"camera URI {_shown(text)} is not a valid URL: {err}",
            hint="rtsp://user:password@192.168.1.20:554/stream, rtsp://[fe80::1]:554/x",
        ) from None
    if not host:
        raise UsageError(
            f"camera URI {_shown(text)} names no host", hint="rtsp://192.168.1.20:554/stream"
        )
    if port == 0:
        raise UsageError(
            f"camera URI {_shown(text)}: port 0 is not a port", hint="RTSP uses 554 by default"
        )
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name.isascii():  # an internationalised name: check its ASCII (punycode) form
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            name = ""
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise UsageError(
            f"camera URI {_shown(text)} names no valid host",
            hint="a host name has labels of at most 63 letters, digits or '-', at most 253 "
            "characters in all; or give the camera's IP address",
        )


def parse_uri(uri: str) -> SourceSpec:
    """Parse a camera URI, or raise ``UsageError`` saying which forms are accepted."""
    text = (uri or "").strip()
    if not text:
        raise UsageError("empty camera URI", hint=f"use one of: {FORMS}")
    if len(text) > MAX_URI:
        raise UsageError(
            f"camera URI of {len(text)} characters: at most {MAX_URI} are allowed",
            hint=f"use one of: {FORMS}",
        )
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise UsageError(
            f"camera URI {_shown(text)} contains the control character {bad!r}",
            hint="check for a stray NUL, tab or newline in it",
        )
    if text in ("auto", "demo"):
        return SourceSpec(text, text, "")
    match = _SCHEME.match(text)
    if match is None:
        if re.fullmatch(r"[0-9]{1,3}", text):
            return SourceSpec(text, "v4l2", f"/dev/video{int(text)}")
        if text.startswith("/dev/video"):
            return SourceSpec(text, "v4l2", _device_path(text, text))
        path = _file_path(text, text)
        return SourceSpec(text, _file_kind(path), str(path))
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "v4l2":
        target, query = _split_query(rest)
        if re.fullmatch(r"[0-9]{1,3}", target):
            target = f"/dev/video{int(target)}"
        if not target.startswith("/"):
            raise UsageError(
                f"camera URI {_shown(text)} names no device",
                hint="write v4l2:///dev/video0 (three slashes: the device path is absolute)",
            )
        return SourceSpec(text, "v4l2", _device_path(target, text), _query_options(query, text))
    if scheme == "csi":
        target, query = _split_query(rest)
        if not re.fullmatch(r"[0-9]{1,2}", target) or int(target) > MAX_CSI:
            raise UsageError(
                f"camera URI {_shown(text)} needs a sensor number (0 to {MAX_CSI})",
                hint="write csi://0 for the first CSI camera, csi://1 for the second",
            )
        return SourceSpec(text, "csi", str(int(target)), _query_options(query, text))
    if scheme == "file":
        target, query = _split_query(rest)
        if not target:
            raise UsageError(
                f"camera URI {_shown(text)} names no file", hint="file:///path/clip.mp4"
            )
        path = _file_path(target, text)
        return SourceSpec(text, _file_kind(path), str(path), _query_options(query, text))
    if scheme in ("rtsp", "rtsps"):
        _network(text)
        return SourceSpec(text, "rtsp", text)
    raise UsageError(
        f"unsupported camera URI scheme {scheme[:20] + '://'!r}", hint=f"use one of: {FORMS}"
    )


def redact(uri: str) -> str:
    """The URI with any password replaced, fit for logs, events and ``describe()``."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        password = None
    if password is None:
        if "@" in uri and "://" in uri:  # unparsable, but may hold a password: hide it all
            scheme, _, rest = uri.partition("://")
            return f"{scheme}://***@{rest.rpartition('@')[2]}"
        return uri
    host = parts.netloc.rpartition("@")[2]  # as written: a bad port must not stop the redaction
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
