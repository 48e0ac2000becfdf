"""CSI cameras: the board picks the stack; missing stacks say how to get them.

The Pi path runs against a simulated ``picamera2`` module (the hardware edge: libcamera is
not on this machine) that serves frames of the demo clip through picamera2's API.
"""

from __future__ import annotations

import sys
import types
from typing import ClassVar

import cv2
import numpy as np
import pytest

from zeke.board import detect_board
from zeke.camera import open_source
from zeke.camera.csi import CsiSource, argus_pipeline, opencv_has_gstreamer
from zeke.errors import InputError, UsageError
from zeke.resources import DEMO_CLIP
from zeke.testing.fake_boards import build


def test_argus_pipeline():
    assert argus_pipeline(1, 640, 480, 30.0) == (
        "nvarguscamerasrc sensor-id=1 ! "
        "video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080, "
        "framerate=(fraction)30/1, format=(string)NV12 ! "
        "nvvidconv flip-method=0 ! "
        "video/x-raw, width=(int)640, height=(int)480, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )
    assert "framerate=(fraction)2997/100" in argus_pipeline(0, 640, 480, 29.97)
    assert "framerate=(fraction)15/1" in argus_pipeline(0, 640, 480, 15)
    assert "flip-method=2" in argus_pipeline(0, 640, 480, 30, flip=2)


@pytest.fixture
def boards(tmp_path):
    return {name: detect_board(build(name, tmp_path / name).root) for name in
            ("generic-x86", "coral-dev-board", "jetson-orin-nano", "raspberry-pi-5")}  # fmt: skip


def test_csi_on_a_pc_says_use_v4l2(boards):
    with pytest.raises(UsageError) as caught:
        open_source("csi://0", board=boards["generic-x86"])
    assert "need a Raspberry Pi or a Jetson" in caught.value.message
    assert "v4l2:///dev/videoN" in caught.value.hint


def test_csi_on_a_coral_points_at_its_v4l2_node(boards):
    with pytest.raises(UsageError) as caught:
        open_source("csi://0", board=boards["coral-dev-board"])
    assert caught.value.hint == "use v4l2:///dev/video0"


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_jetson_without_gstreamer_in_opencv(boards):
    with pytest.raises(InputError) as caught:
        open_source("csi://0", board=boards["jetson-orin-nano"])
    assert "OpenCV built with GStreamer" in caught.value.message
    assert "--system-site-packages" in caught.value.hint


def test_pi_without_picamera2_says_it_is_apt_only(boards, monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as when not installed
    with pytest.raises(InputError) as caught:
        open_source("csi://0", board=boards["raspberry-pi-5"])
    assert "needs picamera2" in caught.value.message
    assert "sudo apt install python3-picamera2" in caught.value.hint
    assert "--system-site-packages" in caught.value.hint


class SimulatedPicamera2:
    """picamera2's API over the demo clip: RGB888 arrays are B, G, R in memory, like libcamera's."""

    cameras: ClassVar[list[dict]] = [
        {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/axi/i2c@88000/imx708@1a"}
    ]
    instances: ClassVar[list] = []

    def __init__(self, camera_num=0):
        if camera_num >= len(self.cameras):
            raise IndexError("camera index out of range")
        self.camera_num, self.config, self.started, self.closed = camera_num, None, False, False
        self._cap = cv2.VideoCapture(str(DEMO_CLIP))
        SimulatedPicamera2.instances.append(self)

    @classmethod
    def global_camera_info(cls):
        return list(cls.cameras)

    def create_video_configuration(self, main=None, controls=None, buffer_count=6):
        return {"main": dict(main), "controls": dict(controls or {}), "buffer_count": buffer_count}

    def configure(self, config):
        assert config["main"]["format"] in ("RGB888", "XRGB8888", "BGR888")
        self.config = config

    def start(self):
        assert self.config is not None, "configure() before start()"
        self.started = True

    def capture_array(self, name="main"):
        assert self.started and name == "main"
        ok, bgr = self._cap.read()
        if not ok:
            raise RuntimeError("Camera frontend has timed out!")
        w, h = self.config["main"]["size"]
        bgr = cv2.resize(bgr, (w, h))
        if self.config["main"]["format"] == "XRGB8888":
            return np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
        return bgr

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True
        self._cap.release()


@pytest.fixture
def picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = SimulatedPicamera2
    SimulatedPicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return SimulatedPicamera2


def test_pi_camera_through_picamera2(boards, picamera2):
    source = open_source("csi://0?width=320&height=240&fps=20", board=boards["raspberry-pi-5"])
    try:
        frames = [source.read() for _ in range(5)]
        info = source.describe()
    finally:
        source.close()
    cam = picamera2.instances[0]
    assert cam.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cam.config["controls"] == {"FrameRate": 20.0}
    assert cam.closed and not cam.started
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    assert info["stack"] == "picamera2" and info["sensor_model"] == "imx708" and info["live"]


def test_pi_camera_number_out_of_range(boards, picamera2):
    with pytest.raises(InputError) as caught:
        open_source("csi://1", board=boards["raspberry-pi-5"])
    assert caught.value.message == "no CSI camera 1: libcamera sees 1"
    assert "ribbon cable" in caught.value.hint


def test_pi_camera_that_stops_is_recovered(boards, picamera2):
    from zeke.camera import Backoff

    source = open_source("csi://0", board=boards["raspberry-pi-5"], resilient=True,
                         backoff=Backoff(0.01, 2, 0.05))  # fmt: skip
    try:
        source.read()
        picamera2.instances[0]._cap.release()  # the frontend times out from now on
        frame = source.read()
    finally:
        source.close()
    assert frame is not None and len(picamera2.instances) == 2
    assert "timed out" in source.health.last_error


def test_board_is_detected_when_not_given(tmp_path, picamera2):
    root = build("raspberry-pi-5", tmp_path / "pi").root
    with CsiSource(0, root=root) as source:
        assert source.read().image.shape == (480, 640, 3)
        assert source.describe()["board"] == "raspberry-pi"
