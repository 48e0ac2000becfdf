"""A CSI ribbon-cable camera: picamera2/libcamera on a Raspberry Pi, Argus on a Jetson.

Which one is used follows the detected board. Neither stack comes from PyPI, so each is
imported only here, and its absence is reported with the way to get it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

from zeke.camera.base import Frame, Source, SourceLost, as_bgr
from zeke.errors import InputError, UsageError

PICAMERA2_HINT = (
    "picamera2 is packaged by Raspberry Pi OS only (not on PyPI): sudo apt install "
    "python3-picamera2, and make the venv see it: python3 -m venv --system-site-packages"
)
GSTREAMER_HINT = (
    "use JetPack's OpenCV, which is built with GStreamer: create the venv with "
    "--system-site-packages and pip uninstall opencv-python-headless inside it"
)


def argus_pipeline(
    sensor: int,
    width: int,
    height: int,
    fps: float,
    capture: tuple[int, int] = (1920, 1080),
    flip: int = 0,
) -> str:
    """The GStreamer pipeline that hands Argus frames to OpenCV as BGR.

    Argus delivers NV12 in NVMM (GPU) memory at a sensor mode's size; ``nvvidconv`` scales
    and converts on the VIC, ``videoconvert`` drops the padding byte, ``appsink`` keeps only
    the newest frame so a slow reader sees fresh frames, not a backlog.
    """
    rate = Fraction(fps).limit_denominator(1001)
    cap_w, cap_h = capture
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        f"video/x-raw(memory:NVMM), width=(int){cap_w}, height=(int){cap_h}, "
        f"framerate=(fraction){rate.numerator}/{rate.denominator}, format=(string)NV12 ! "
        f"nvvidconv flip-method={flip} ! "
        f"video/x-raw, width=(int){width}, height=(int){height}, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


def opencv_has_gstreamer() -> bool:
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


class CsiSource(Source):
    """Frames from CSI sensor ``sensor`` (``csi://N``)."""

    kind = "csi"
    live = True

    def __init__(
        self,
        sensor: int,
        uri: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        board=None,
        root: str | os.PathLike = "/",
        flip: int = 0,
        **_options: Any,
    ):
        super().__init__(uri or f"csi://{sensor}")
        self.sensor = int(sensor)
        self.width = width or 640
        self.height = height or 480
        self.fps = fps or 30.0
        self.flip = flip
        self._board = board
        self._root = root
        self._camera = None  # picamera2.Picamera2
        self._cap = None  # cv2.VideoCapture
        self.stack = ""
        self.sensor_model = ""

    def _open(self) -> None:
        if self._board is None:
            from zeke.board import detect_board

            self._board = detect_board(self._root, probe_libraries=False)
        kind = self._board.kind
        if kind == "raspberry-pi":
            self._open_picamera2()
        elif kind == "jetson":
            self._open_argus()
        elif kind == "coral-dev-board":
            raise UsageError(
                "on the Coral Dev Board the CSI camera is a V4L2 device, not csi://",
                hint="use v4l2:///dev/video0",
            )
        else:
            raise UsageError(
                f"csi:// cameras need a Raspberry Pi or a Jetson; this is {self._board.model}",
                hint="for a USB camera use v4l2:///dev/videoN (`zeke setup` lists them)",
            )

    # -- Raspberry Pi: picamera2 on libcamera ---------------------------------------------
    def _open_picamera2(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise InputError(
                "csi:// on a Raspberry Pi needs picamera2, which this Python cannot import",
                hint=PICAMERA2_HINT,
            ) from None
        cameras = Picamera2.global_camera_info()
        if self.sensor >= len(cameras):
            raise InputError(
                f"no CSI camera {self.sensor}: libcamera sees {len(cameras)}",
                hint="check the ribbon cable (contacts facing the board) and camera_auto_detect=1 "
                "in /boot/firmware/config.txt",
            )
        self.sensor_model = str(cameras[self.sensor].get("Model", ""))
        try:
            camera = Picamera2(camera_num=self.sensor)
            # libcamera's RGB888 is laid out B, G, R in memory: OpenCV's BGR, no conversion
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=4,
            )
            camera.configure(config)
            camera.start()
        except Exception as err:  # libcamera raises RuntimeError and friends
            raise InputError(
                f"CSI camera {self.sensor} ({self.sensor_model}) did not start: {err}",
                hint="is another program (rpicam-*, another zeke) using it?",
            ) from None
        self._camera = camera
        self.stack = "picamera2"
        size = config.get("main", {}).get("size")
        if size:
            self.width, self.height = int(size[0]), int(size[1])

    # -- Jetson: Argus through GStreamer ----------------------------------------------------
    def _open_argus(self) -> None:
        import cv2

        if not opencv_has_gstreamer():
            raise InputError(
                "csi:// on a Jetson needs OpenCV built with GStreamer; this OpenCV has none",
                hint=GSTREAMER_HINT,
            )
        pipeline = argus_pipeline(self.sensor, self.width, self.height, self.fps, flip=self.flip)
        cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            cap.release()
            raise InputError(
                f"CSI sensor {self.sensor} did not open through Argus",
                hint="check the ribbon cable; `sudo systemctl restart nvargus-daemon` clears a "
                "stuck camera daemon",
            )
        self._cap = cap
        self.stack = "argus"

    def _read(self) -> Frame | None:
        if self._camera is not None:
            try:
                image = self._camera.capture_array("main")
            except Exception as err:
                raise SourceLost(f"CSI camera {self.sensor} stopped delivering: {err}") from None
            return self._frame(as_bgr(image))
        return self._capture_frame(self._cap, f"CSI sensor {self.sensor} stopped delivering frames")

    def _close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            try:
                camera.stop()
            finally:
                camera.close()
        self._release_capture()

    def _describe(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor,
            "sensor_model": self.sensor_model,
            "stack": self.stack,
            "board": getattr(self._board, "kind", None),
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
        }
