"""A video file as a camera: paced at its own frame rate, or as fast as it decodes.

Paced playback behaves like a live camera: a reader that falls behind misses frames rather
than seeing the clip in slow motion (``drop_late``), and frame indices keep counting the
clip's own frames (``index % frame_count`` is the position in the clip, also across loops).
A file that stops decoding before its last frame (cut off, replaced) raises ``SourceLost``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from zeke.camera.base import Frame, Source, SourceLost, as_bgr
from zeke.camera.pacing import Pacer
from zeke.errors import InputError

#: a reader further behind than this re-anchors the clock instead of skipping (e.g. a pause)
MAX_SKIP_S = 2.0


def fourcc_text(code: float) -> str:
    """OpenCV's numeric FOURCC as its four characters ("" when unknown)."""
    value = int(code)
    text = "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip("\0") else ""


def check_readable_file(path: Path, what: str) -> None:
    """Raise an ``InputError`` that says why ``path`` cannot be read, if it cannot.

    Only a regular file passes: the decoders would block for ever on a FIFO and never finish
    a device such as ``/dev/zero``, so those are refused before anything opens them.
    """
    from zeke.inputs import kind_of, shown

    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(
            f"no such {what}: {shown(path)}", hint="check the path (zeke setup lists cameras)"
        ) from None
    except OSError as err:
        raise InputError(f"cannot open {shown(path)[:200]}: {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{shown(path)} is a directory, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"{shown(path)} is {kind_of(info.st_mode)}, not a regular file; refusing to read it",
            hint=f"point the camera at a {what} saved on disk",
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"no permission to read {shown(path)}", hint=f"chmod a+r {path}")


class VideoFileSource(Source):
    """Frames of a video file decoded by OpenCV's FFmpeg backend."""

    kind = "video"

    def __init__(
        self,
        path: str | os.PathLike,
        uri: str | None = None,
        *,
        pace: bool = True,
        loop: bool = False,
        drop_late: bool = True,
        **_camera_options: Any,
    ):
        super().__init__(uri or str(path))
        self.path = Path(path)
        self.pace = pace
        self.loop = loop
        self.drop_late = drop_late
        self.fps = 0.0
        self.frame_count = 0
        self.width = self.height = 0
        self.codec = ""
        self.dropped = 0
        self.passes = 0
        self._cap = None
        self._pos = 0  # frames consumed from the current pass
        self._pacer: Pacer | None = None
        self._ended = False

    def _capture(self):
        import cv2

        check_readable_file(self.path, "video file")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise InputError(
                f"cannot decode {self.path}: not a video OpenCV's FFmpeg can read",
                hint="use an .mp4/.avi/.mkv file, or an image or a directory of images",
            )
        return cap

    def _open(self) -> None:
        import cv2

        cap = self._capture()
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0.0 < fps < 1000.0 else 0.0
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.codec = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        self._cap, self._pos, self.passes = cap, 0, 1
        self._pacer = Pacer(self.fps) if self.fps > 0 else None
        self._ended = False

    def _rewind(self) -> None:
        """Start the next pass by reopening the file, so a replaced or removed file is noticed."""
        self._release_capture()
        try:
            self._cap = self._capture()
        except InputError as err:
            raise SourceLost(f"{self.path} cannot be reopened to loop: {err.message}") from None
        self._pos = 0
        self.passes += 1

    def _decode(self):
        ok, image = self._cap.read()
        if ok:
            self._pos += 1
            return image
        if self.frame_count and self._pos < self.frame_count - 1:
            raise SourceLost(
                f"{self.path} stopped decoding at frame {self._pos} of {self.frame_count}",
                hint="the file is cut off or was replaced while playing",
            )
        return None

    def _skip_late(self) -> int:
        """Sleep until the next frame is due, or skip frames whose time has passed."""
        if not self.pace or self._pacer is None:
            return 0
        late = int(self._pacer.wait(self._next_index) * self.fps)
        if late <= 0 or not self.drop_late:
            return 0
        if late > self.fps * MAX_SKIP_S:
            self._pacer.restart(self._next_index)
            return 0
        skipped = 0
        for _ in range(late):
            if self.frame_count and self._pos >= self.frame_count:
                break
            if not self._cap.grab():
                break
            self._pos += 1
            skipped += 1
        self.dropped += skipped
        return skipped

    def _read(self) -> Frame | None:
        if self._ended:  # FFmpeg may hand out a drained frame after the end: stay ended
            return None
        skipped = self._skip_late()
        image = self._decode()
        if image is None and self.loop:
            self._rewind()
            image = self._decode()
            if image is None:
                raise SourceLost(f"{self.path} has no frames left to loop over")
        if image is None:
            self._ended = True
            return None
        return self._frame(as_bgr(image), skipped=skipped)

    def _close(self) -> None:
        self._release_capture()

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "frame_count": self.frame_count,
            "duration_s": round(self.frame_count / self.fps, 3) if self.fps else None,
            "codec": self.codec,
            "pace": self.pace,
            "loop": self.loop,
            "dropped": self.dropped,
            "passes": self.passes,
        }
