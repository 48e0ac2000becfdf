"""BlazeFace decoding: anchors, letterbox mapping, weighted NMS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zeke.vision.blazeface import FULL_RANGE, SHORT_RANGE
from zeke.vision.detections import Detections, iou_one_to_many, weighted_nms
from zeke.vision.letterbox import Letterbox
from zeke.vision.pipeline import FacePipeline


def test_anchor_counts_match_the_models():
    assert SHORT_RANGE.centres().shape == (896, 2)
    assert FULL_RANGE.centres().shape == (2304, 2)
    short = SHORT_RANGE.centres()
    # first layer: 16x16 cells, 2 anchors each, starting at the top-left cell centre
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[1], short[0])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
    # second group: 8x8 cells with 6 anchors each
    np.testing.assert_allclose(short[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(short[517], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(short[518], [1.5 / 8, 0.5 / 8])


def test_letterbox_round_trip():
    box = Letterbox.fit(640, 480, 128)
    assert (box.inner_w, box.inner_h, box.pad_x, box.pad_y) == (128, 96, 0, 16)
    pts = np.array([[0.0, 16 / 128], [1.0, 112 / 128]])
    np.testing.assert_allclose(box.to_source(pts), [[0, 0], [640, 480]], atol=1e-6)


def test_weighted_nms_blends_a_cluster_and_keeps_separate_faces():
    boxes = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [100, 100, 140, 140]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out = weighted_nms(Detections(boxes, scores, kps), 0.3)
    assert len(out) == 2
    np.testing.assert_allclose(out.boxes[0], [10.8, 10.8, 50.8, 50.8], atol=1e-4)
    assert out.scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(out.boxes[1], boxes[2])


def test_boxes_follow_the_face_through_the_letterbox(astronaut_bgr):
    """The same face pasted at two places in a wide frame is found at both places."""
    pipeline = FacePipeline.create(detector="full", classify=False)
    face = cv2.resize(astronaut_bgr[40:240, 140:320], (270, 300))  # head, face ~150 px
    canvas = np.full((640, 1280, 3), 90, np.uint8)
    canvas[250:550, 100:370] = face
    canvas[100:400, 900:1170] = face
    dets = pipeline.detect(canvas)
    assert len(dets) == 2
    first, second = np.array(sorted(dets.boxes.tolist()))
    # centres differ by the paste offset (800, -150) within ~one model-input pixel (1280/192)
    centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
    np.testing.assert_allclose(centre(second) - centre(first), [800, -150], atol=8)
    assert (second[2] - second[0]) == pytest.approx(first[2] - first[0], rel=0.08)
    # and the keypoints sit inside their boxes
    for b, k in zip(dets.boxes, dets.keypoints[:, :4]):
        assert np.all((k[:, 0] >= b[0]) & (k[:, 0] <= b[2]) & (k[:, 1] >= b[1]) & (k[:, 1] <= b[3]))


def test_iou_helper():
    a = np.array([0, 0, 10, 10], np.float32)
    many = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_one_to_many(a, many), [1.0, 1 / 3, 0.0], atol=1e-6)


def test_empty_frame_has_no_faces():
    pipeline = FacePipeline.create(detector="short")
    gray = np.full((480, 640, 3), 128, np.uint8)
    noise = cv2.randn(np.zeros((480, 640, 3), np.uint8), 128, 20)
    assert pipeline.process(gray).faces == []
    assert pipeline.process(noise).faces == []
