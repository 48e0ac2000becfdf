"""Open a camera once and grab a usable test frame, with a time limit.

``zeke setup`` and ``zeke doctor`` use this to answer "is the camera there and does it give
pictures?". A live camera is read for a moment first (auto-exposure settles); a clip is read
a few seconds in, where something happens, rather than at its first frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from zeke.camera.base import Frame
from zeke.errors import InputError, ZekeError

#: how long a live camera is read before its frame counts (exposure and white balance settle)
SETTLE_S = 0.5
#: how far into a clip the test frame is taken (frames), at most a third of the clip
CLIP_OFFSET = 150


@dataclass
class CameraProbe:
    """The result of opening a camera and reading from it."""

    uri: str
    frame: Frame | None = None
    info: dict[str, Any] = field(default_factory=dict)
    open_ms: float = 0.0
    read_ms: float = 0.0  # mean per frame read while probing
    frames_read: int = 0
    error: ZekeError | None = None

    @property
    def ok(self) -> bool:
        return self.frame is not None and self.error is None


def _probe(uri: str, options: dict[str, Any], result: CameraProbe) -> None:
    from zeke.camera import open_source

    t0 = time.perf_counter()
    source = open_source(uri, **{**options, "pace": False, "loop": False})
    try:
        result.open_ms = (time.perf_counter() - t0) * 1e3
        result.info = source.describe()
        frame_count = int(result.info.get("frame_count") or 0)
        skip = min(CLIP_OFFSET, frame_count // 3) if frame_count else 0
        t_read = time.perf_counter()
        deadline = t_read + SETTLE_S
        frame = None
        while True:
            latest = source.read()
            if latest is None:
                break
            frame = latest
            result.frames_read += 1
            if source.live and time.perf_counter() < deadline:
                continue
            if not source.live and result.frames_read <= skip:
                continue
            break
        if result.frames_read:
            result.read_ms = (time.perf_counter() - t_read) * 1e3 / result.frames_read
        if frame is None:
            raise InputError(f"{uri} opened but gave no frame")
        result.frame = frame
        result.info = source.describe()
    finally:
        source.close()


def probe_camera(uri: str, timeout_s: float = 15.0, **options: Any) -> CameraProbe:
    """Open ``uri``, read a test frame, close it; errors are returned, not raised.

    A camera that hangs (a stuck driver, an RTSP server that never answers) is reported
    after ``timeout_s`` instead of blocking the caller.
    """
    result = CameraProbe(uri)

    def run() -> None:
        try:
            _probe(uri, options, result)
        except ZekeError as err:
            result.error = err
        except Exception as err:  # an unexpected driver/decoder failure is still a result
            result.error = InputError(f"{uri}: {type(err).__name__}: {err}")

    worker = threading.Thread(target=run, name="zeke-camera-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        result.error = InputError(
            f"{uri} gave no frame within {timeout_s:.0f} s",
            hint="the camera or stream hangs; unplug and replug it, or check the network",
        )
        result.frame = None
    return result
