"""An IP camera on the LAN over RTSP, decoded here by OpenCV's FFmpeg backend.

The stream is pulled over TCP by default (UDP drops packets on Wi-Fi and shows as smeared
frames). Opening and reading have timeouts, so a camera that goes away raises ``SourceLost``
instead of blocking forever. Frames are processed only on this device, like any camera's.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from zeke.camera.base import Frame, Source
from zeke.camera.uri import redact
from zeke.camera.video import fourcc_text
from zeke.errors import InputError, UsageError

_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()


class RtspSource(Source):
    """Frames from ``rtsp://[user:password@]host[:port]/path``."""

    kind = "rtsp"
    live = True

    def __init__(
        self,
        url: str,
        uri: str | None = None,
        *,
        transport: str = "tcp",
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        **_options: Any,
    ):
        super().__init__(uri or url)
        if transport not in ("tcp", "udp"):
            raise UsageError(f"RTSP transport must be tcp or udp, not {transport!r}")
        self.url = url
        self.transport = transport
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.width = self.height = 0
        self.fps = 0.0
        self.codec = ""
        self._cap = None

    def _open(self) -> None:
        import cv2

        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
        ]
        # FFmpeg options reach OpenCV only through the environment, read at open time
        with _env_lock:
            previous = os.environ.get(_ENV)
            os.environ[_ENV] = f"rtsp_transport;{self.transport}"
            try:
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
            finally:
                if previous is None:
                    os.environ.pop(_ENV, None)
                else:
                    os.environ[_ENV] = previous
        if not cap.isOpened():
            cap.release()
            raise InputError(
                f"cannot open {redact(self.url)}: no answer, or not a stream FFmpeg can decode",
                hint="check address, port, path and credentials (try the URL in VLC/ffplay)",
            )
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.codec = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        self._cap = cap

    def _read(self) -> Frame | None:
        return self._capture_frame(
            self._cap,
            f"stream {redact(self.url)} stopped delivering frames",
            hint="the camera or the network went away; zeke reconnects when it is back",
        )

    def _close(self) -> None:
        self._release_capture()

    def _describe(self) -> dict[str, Any]:
        return {
            "url": redact(self.url),
            "transport": self.transport,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "codec": self.codec,
        }

    def __repr__(self) -> str:
        return f"<RtspSource {redact(self.url)!r}>"
