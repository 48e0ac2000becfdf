"""A USB/UVC (or any V4L2 capture) camera through OpenCV's V4L2 backend.

Size, frame rate and pixel format are requested, then read back: ``describe()`` reports what
the driver actually granted. Above 640x480 MJPG is asked for, since raw YUYV at that size
exceeds what most cameras can send over USB 2 at full frame rate.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zeke.camera.base import Frame, Source
from zeke.camera.discovery import querycap
from zeke.camera.video import fourcc_text
from zeke.errors import InputError

GROUP_HINT = (
    "add your user to the 'video' group (sudo usermod -aG video $USER, then log in again) "
    "or run `sudo zeke setup`"
)


class V4l2Source(Source):
    """Frames from ``/dev/videoN`` (or a ``/dev/v4l/by-id/...`` link to it)."""

    kind = "v4l2"
    live = True

    def __init__(
        self,
        device: str | os.PathLike,
        uri: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        format: str | None = None,
        **_options: Any,
    ):
        super().__init__(uri or f"v4l2://{device}")
        self.device = Path(device)
        self.requested = {"width": width, "height": height, "fps": fps, "format": format}
        self.width = self.height = 0
        self.fps = 0.0
        self.format = ""
        self.card = ""
        self._cap = None

    def _check_node(self) -> None:
        if not self.device.exists():
            raise InputError(
                f"no camera at {self.device}",
                hint="plug it in, or pick another with `zeke setup` (it lists the cameras found)",
            )
        if not os.access(self.device, os.R_OK | os.W_OK):
            raise InputError(f"no permission to open {self.device}", hint=GROUP_HINT)
        caps = querycap(self.device)
        if caps is None:
            return
        self.card = caps.card
        if caps.metadata_only:
            raise InputError(
                f"{self.device} is the metadata node of '{caps.card}', not its picture",
                hint="use the camera's other /dev/video node (usually the one just before it)",
            )
        if not caps.captures_video:
            raise InputError(
                f"{self.device} ('{caps.card}', driver {caps.driver}) cannot capture video",
                hint="`zeke setup` lists the capture devices found",
            )

    def _open(self) -> None:
        import cv2

        self._check_node()
        cap = cv2.VideoCapture(str(self.device), cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise InputError(
                f"{self.device} did not open as a camera",
                hint="it may be in use by another program (fuser -v " + str(self.device) + ")",
            )
        width, height = self.requested["width"], self.requested["height"]
        fmt = self.requested["format"]
        if fmt is None and width and height and width * height > 640 * 480:
            fmt = "MJPG"
        if fmt:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fmt))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self.requested["fps"]:
            cap.set(cv2.CAP_PROP_FPS, self.requested["fps"])
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.format = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        self._cap = cap

    def _read(self) -> Frame | None:
        return self._capture_frame(
            self._cap,
            f"camera {self.device} stopped delivering frames",
            hint="check its cable and USB power; zeke reopens it when it comes back",
        )

    def _close(self) -> None:
        self._release_capture()

    def _describe(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "card": self.card,
            "requested": self.requested,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "format": self.format,
        }
