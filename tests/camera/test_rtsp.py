"""IP cameras over RTSP, against a simulated camera speaking RTSP and RTP/JPEG on loopback."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from zeke.camera import Backoff, open_source
from zeke.errors import InputError
from zeke.testing.rtsp_camera import RtspCamera, rtp_jpeg_packets, split_jpeg


@pytest.fixture
def camera():
    cam = RtspCamera(max_frames=45).start()
    yield cam
    cam.stop()


def test_frames_arrive_decoded_and_match_what_was_sent(camera):
    source = open_source(camera.url, open_timeout_s=10, read_timeout_s=10)
    try:
        frames = [source.read() for _ in range(8)]
        info = source.describe()
    finally:
        source.close()
    assert info["kind"] == "rtsp" and info["live"] and info["codec"] == "MJPG"
    assert (info["width"], info["height"]) == (640, 480)
    assert [f.index for f in frames] == list(range(8))
    sent = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in camera.frames.jpegs]
    for frame in frames:
        best = min(np.abs(s.astype(np.int16) - frame.image).mean() for s in sent)
        assert best < 2.0, "each frame is one the camera sent"


def test_credentials_are_used_and_never_shown(tmp_path):
    with RtspCamera(max_frames=5, username="admin", password="hunter2") as cam:
        wrong = cam.url.replace("hunter2", "wrong")
        with pytest.raises(InputError) as caught:
            open_source(wrong, open_timeout_s=5)
        assert "admin:***@" in caught.value.message and "wrong" not in caught.value.message
        with open_source(cam.url, open_timeout_s=10) as source:
            assert source.read() is not None
            assert "hunter2" not in str(source.describe())


def test_nothing_listening():
    with pytest.raises(InputError) as caught:
        open_source("rtsp://127.0.0.1:9/stream", open_timeout_s=3)
    assert caught.value.message.startswith("cannot open rtsp://127.0.0.1:9/stream")


def test_a_dropped_stream_is_reconnected(camera):
    states = []
    source = open_source(
        camera.url,
        resilient=True,
        backoff=Backoff(0.1, 2.0, 0.5),
        on_state=lambda h: states.append(h.state.value),
        open_timeout_s=5,
        read_timeout_s=3,
    )
    try:
        for _ in range(3):
            source.read()
        camera.stop()  # the camera loses power
        threading.Timer(1.0, camera.start).start()  # and comes back a second later
        deadline = time.monotonic() + 60
        while source.health.reconnects == 0 and time.monotonic() < deadline:
            assert source.read() is not None
        after = [source.read() for _ in range(3)]
    finally:
        source.close()
    assert source.health.reconnects == 1
    assert states[0] == "reconnecting" and states[-1] == "ok"
    assert all(f.image.shape == (480, 640, 3) for f in after)
    assert camera.sessions == 2


def test_rtp_jpeg_packetisation(astronaut_bgr):
    _ok, buf = cv2.imencode(".jpg", astronaut_bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    jpeg = buf.tobytes()
    kind, width, height, tables, scan = split_jpeg(jpeg)
    assert (kind, width, height) == (1, 512, 512) and len(tables) == 2
    packets, next_seq = rtp_jpeg_packets(jpeg, 65534, 1234, 0xABCDEF)
    assert next_seq == 65534 + len(packets)
    assert all(p[0] == 0x80 and p[1] & 0x7F == 26 for p in packets)
    assert [p[1] >> 7 for p in packets] == [0] * (len(packets) - 1) + [1]  # marker on last
    offsets = [int.from_bytes(p[13:16], "big") for p in packets]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    first = packets[0]
    assert first[16:20] == bytes([1, 255, 64, 64])  # type 4:2:0, Q=255, 512/8, 512/8
    assert first[20:24] == bytes([0, 0, 0, 128]) and first[24:152] == tables[0] + tables[1]
    payload = first[152:] + b"".join(p[20:] for p in packets[1:])
    assert payload == scan
