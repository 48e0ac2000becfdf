"""The frame record and the one interface every camera source implements.

Everything left of the tracker sees frames only through ``Source``: a USB webcam, a CSI
sensor, a video file, a folder of photos and an IP camera all look the same, so each can be
swapped for another (or for a clip in tests) without touching the pipeline.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from zeke.errors import InputError


@dataclass(slots=True)
class Frame:
    """One captured picture: HxWx3 uint8 BGR, when it was captured, its position in the stream."""

    image: np.ndarray  # HxWx3 uint8 BGR
    ts: float  # time.monotonic() at capture
    index: int  # position in the stream since open (gaps mean frames were skipped)


class SourceLost(InputError):
    """A source stopped delivering before its end (unplugged, dropped stream, cut-off file).

    ``ResilientSource`` reopens a source that raises this; plain callers see one clear line.
    """


class Source(abc.ABC):
    """A camera or a recording, opened, read frame by frame and closed.

    ``read`` returns ``None`` at the end of a finite stream (a file, a folder of images). A
    live source (``live = True``) has no end: when it stops delivering it raises
    ``SourceLost`` instead.
    """

    #: what kind of source this is: "v4l2", "csi", "video", "image", "images" or "rtsp"
    kind: str = "source"
    #: live sources never end on their own; a stop is a loss worth reconnecting for
    live: bool = False

    def __init__(self, uri: str):
        self.uri = uri
        self._opened = False
        self._closed = False
        self._next_index = 0

    @property
    def is_open(self) -> bool:
        return self._opened

    def open(self) -> Source:
        """Acquire the device or file; safe to call on an open source. Returns ``self``."""
        if not self._opened:
            self._open()
            self._opened, self._closed = True, False
        return self

    def read(self) -> Frame | None:
        """The next frame, or ``None`` at the end of a finite stream (or once closed)."""
        if not self._opened:
            if self._closed:
                return None
            self.open()
        return self._read()

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""
        if self._opened:
            self._opened, self._closed = False, True
            self._close()

    def describe(self) -> dict[str, Any]:
        """What this source is and what was negotiated (size, fps, format...), JSON-ready."""
        from zeke.camera.uri import redact

        return {"uri": redact(self.uri), "kind": self.kind, "live": self.live, **self._describe()}

    # -- what each source kind provides ---------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _read(self) -> Frame | None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    def _describe(self) -> dict[str, Any]:
        return {}

    # -- helpers ----------------------------------------------------------------------------
    def _frame(self, image: np.ndarray, ts: float | None = None, skipped: int = 0) -> Frame:
        """Wrap a captured image, numbering it (``skipped`` frames leave a gap)."""
        self._next_index += skipped
        frame = Frame(image, time.monotonic() if ts is None else ts, self._next_index)
        self._next_index += 1
        return frame

    def _capture_frame(self, cap: Any, lost: str, hint: str | None = None) -> Frame:
        """The next frame of an OpenCV capture; a failed read means the source was lost."""
        ok, image = cap.read()
        if not ok or image is None:
            raise SourceLost(lost, hint=hint)
        return self._frame(as_bgr(image))

    def _release_capture(self) -> None:
        """Release the OpenCV capture kept in ``self._cap``, if one is open."""
        cap, self._cap = getattr(self, "_cap", None), None
        if cap is not None:
            cap.release()

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri!r}>"


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Make any 8-bit image HxWx3 BGR (grey and BGRA frames come from some drivers)."""
    if image.ndim == 2:
        import cv2

        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return image
