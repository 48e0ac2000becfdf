"""Backend choice: with no Edge TPU here, everything runs on the CPU and says why."""

from __future__ import annotations

import numpy as np
import pytest

from zeke.vision.backends import select_backend
from zeke.vision.letterbox import Letterbox
from zeke.vision.pipeline import FacePipeline
from zeke.vision.ssd import decode_postprocess


@pytest.mark.parametrize("requested", ["auto", "edgetpu"])
def test_no_edge_tpu_falls_back_to_cpu_with_a_reason(requested):
    sel = select_backend(requested)
    assert sel.name == "cpu"
    assert "libedgetpu.so.1" in sel.reason and "CPU fallback" in sel.reason
    assert sel.fell_back == (requested == "edgetpu")


def test_cpu_requested():
    assert select_backend("cpu").reason == "CPU requested"


def test_ssd_without_tpu_uses_blazeface_and_says_so(astronaut_bgr):
    pipeline = FacePipeline.create(detector="ssd")
    info = pipeline.backend_info
    assert info["detector"] == "short" and info["detect_backend"] == "cpu"
    assert "needs the Edge TPU" in info["reason"]
    assert len(pipeline.process(astronaut_bgr).faces) == 1


def test_ssd_postprocess_outputs_map_to_source_pixels():
    """The TPU model's post-processed outputs (boxes as ymin, xmin, ymax, xmax)."""
    box = Letterbox.fit(640, 480, 320)  # 320x240 inside, 40 px bars top and bottom
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, 0] = [(40 + 60) / 320, 80 / 320, (40 + 120) / 320, 140 / 320]
    boxes[0, 1] = [0.5, 0.5, 0.6, 0.6]
    classes = np.zeros((1, 10), np.float32)
    scores = np.zeros((1, 10), np.float32)
    scores[0, :2] = [0.9, 0.3]
    count = np.array([2.0], np.float32)
    dets = decode_postprocess([boxes, classes, scores, count], box, min_score=0.5)
    assert len(dets) == 1 and dets.keypoints is None
    np.testing.assert_allclose(dets.boxes[0], [160, 120, 280, 240], atol=1e-3)
    assert dets.scores[0] == pytest.approx(0.9)
