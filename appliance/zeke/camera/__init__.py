"""Camera sources: one URI names any of them, ``open_source`` opens it.

    >>> with open_source("demo", pace=False) as source:
    ...     frame = source.read()     # Frame(image=HxWx3 BGR, ts=monotonic, index=0)

See ``zeke.camera.uri`` for the URI forms, ``zeke.camera.discovery`` for finding cameras
and ``zeke.camera.resilient`` for surviving unplugged cameras and dropped streams.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zeke.camera.base import Frame, Source, SourceLost
from zeke.camera.resilient import Backoff, Health, ResilientSource, SourceFailed, SourceState
from zeke.camera.uri import OPTIONS, SourceSpec, parse_uri, redact
from zeke.errors import InputError, UsageError

__all__ = [
    "DEMO_CLIP",
    "Backoff",
    "Frame",
    "Health",
    "ResilientSource",
    "Source",
    "SourceFailed",
    "SourceLost",
    "SourceSpec",
    "SourceState",
    "build_source",
    "demo_clip_path",
    "open_source",
    "parse_uri",
    "redact",
    "resolve_uri",
]

#: the clip every command falls back to when there is no camera (``scripts/make_demo_clip.py``)
DEMO_CLIP = Path(__file__).resolve().parent.parent / "data" / "demo.mp4"
#: its ground truth: face boxes and identities per frame
DEMO_TRUTH = DEMO_CLIP.with_suffix(".json")

#: options any source accepts (those that do not apply to a kind are ignored by it)
SOURCE_OPTIONS = frozenset(OPTIONS) | {
    "drop_late",
    "transport",
    "open_timeout_s",
    "read_timeout_s",
    "flip",
}


def demo_clip_path() -> Path:
    """The bundled demo clip, or an ``InputError`` saying how to get it back."""
    if not DEMO_CLIP.is_file():
        raise InputError(
            f"the bundled demo clip is missing ({DEMO_CLIP})",
            hint="reinstall zeke, or recreate it with `python scripts/make_demo_clip.py`",
        )
    return DEMO_CLIP


def resolve_uri(uri: str, root: str | os.PathLike = "/", board_kind: str | None = None) -> str:
    """``auto``: the first discovered camera, else the demo clip; ``demo``: the clip."""
    text = (uri or "").strip()
    if text == "demo":
        return str(demo_clip_path())
    if text == "auto":
        from zeke.camera.discovery import discover_cameras

        cameras = discover_cameras(root, board_kind=board_kind)
        return cameras[0].best_uri if cameras else str(demo_clip_path())
    return text


def build_source(spec: SourceSpec, options: dict[str, Any], board=None, root="/") -> Source:
    """An unopened source of the kind ``spec`` names."""
    if spec.kind == "v4l2":
        from zeke.camera.v4l2 import V4l2Source

        return V4l2Source(spec.target, spec.uri, **options)
    if spec.kind == "csi":
        from zeke.camera.csi import CsiSource

        return CsiSource(int(spec.target), spec.uri, board=board, root=root, **options)
    if spec.kind == "video":
        from zeke.camera.video import VideoFileSource

        return VideoFileSource(spec.target, spec.uri, **options)
    if spec.kind in ("image", "images"):
        from zeke.camera.images import ImageSource

        return ImageSource(spec.target, spec.uri, **options)
    if spec.kind == "rtsp":
        from zeke.camera.rtsp import RtspSource

        return RtspSource(spec.target, spec.uri, **options)
    raise UsageError(f"cannot build a source for {spec.uri!r}")  # auto/demo are resolved first


def open_source(
    uri: str,
    *,
    resilient: bool = False,
    backoff: Backoff | None = None,
    max_attempts: int | None = None,
    wait_first_open: bool = False,
    on_state: Callable[[Health], None] | None = None,
    board=None,
    root: str | os.PathLike = "/",
    **options: Any,
) -> Source:
    """Parse ``uri``, build its source and open it.

    Options (``width``, ``height``, ``fps``, ``format``, ``loop``, ``pace``, ...) apply where
    they make sense; those in the URI's query win over keyword ones. ``None`` values are
    dropped, so config values can be passed straight through. With ``resilient=True`` the
    source is wrapped in a ``ResilientSource`` that reopens it when it stops delivering.
    """
    unknown = sorted(set(options) - SOURCE_OPTIONS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], SOURCE_OPTIONS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UsageError(
            f"unknown camera option '{unknown[0]}'",
            hint=f"{hint}allowed: {', '.join(sorted(SOURCE_OPTIONS))}",
        )
    board_kind = getattr(board, "kind", None)
    spec = parse_uri(resolve_uri(uri, root=root, board_kind=board_kind))
    merged = {k: v for k, v in options.items() if v is not None}
    merged.update(spec.options)

    def factory() -> Source:
        return build_source(spec, merged, board=board, root=root)

    source: Source
    if resilient:
        source = ResilientSource(
            factory,
            backoff=backoff,
            max_attempts=max_attempts,
            wait_first_open=wait_first_open,
            on_state=on_state,
        )
    else:
        source = factory()
    source.open()
    return source
