"""The bundled demo clip: what it promises (size, faces entering and leaving) and its truth."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from zeke.resources import DEMO_CLIP, DEMO_TRUTH

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads(DEMO_TRUTH.read_text())


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def test_clip_format_and_size(truth):
    assert DEMO_CLIP.stat().st_size < 4 * 1024 * 1024
    cap = cv2.VideoCapture(str(DEMO_CLIP), cv2.CAP_FFMPEG)
    assert cap.isOpened()
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    assert cap.get(cv2.CAP_PROP_FPS) == 15
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == truth["frames"] == len(truth["per_frame"])
    assert 20 <= truth["frames"] / truth["fps"] <= 30
    cap.release()


def test_faces_enter_leave_and_overlap_in_time(truth):
    counts = Counter(len(faces) for faces in truth["per_frame"])
    assert {0, 1, 2, 3} <= set(counts), counts
    assert truth["per_frame"][0] == [] and truth["per_frame"][-1] == []
    actors = {a["id"]: a for a in truth["actors"]}
    assert len(actors) >= 4
    assert {a["identity"] for a in actors.values()} == {"astronaut", "hopper"}
    assert {a["mirrored"] for a in actors.values()} == {True, False}
    for actor_id, actor in actors.items():
        frames = [i for i, faces in enumerate(truth["per_frame"])
                  if any(f["actor"] == actor_id for f in faces)]  # fmt: skip
        assert frames == list(range(actor["first_frame"], actor["last_frame"] + 1))
        entering = next(f for f in truth["per_frame"][frames[0]] if f["actor"] == actor_id)
        leaving = next(f for f in truth["per_frame"][frames[-1]] if f["actor"] == actor_id)
        assert entering["visible"] < 0.5 and leaving["visible"] < 0.5, (
            "enters and leaves by an edge"
        )


def test_truth_boxes_are_sane(truth):
    heights = []
    for faces in truth["per_frame"]:
        for face in faces:
            x0, y0, x1, y1 = face["box"]
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
            assert 0 < face["visible"] <= 1 and 0 <= face["occluded"] <= 1
            if face["visible"] == 1:
                heights.append(y1 - y0)
    assert min(heights) >= 75 and max(heights) <= 205


def test_the_detector_finds_the_faces_the_truth_names(truth):
    from zeke.vision.pipeline import FacePipeline

    pipeline = FacePipeline.create(detector="short", backend="cpu", classify=False)
    cap = cv2.VideoCapture(str(DEMO_CLIP), cv2.CAP_FFMPEG)
    found = expected = stray = 0
    for index in range(truth["frames"]):
        ok, image = cap.read()
        assert ok
        if index % 3:
            continue
        faces = pipeline.process(image).faces
        gt = truth["per_frame"][index]
        for face in gt:
            if face["visible"] == 1 and face["occluded"] < 0.1:
                expected += 1
                found += any(iou(face["box"], f.box) >= 0.4 for f in faces)
        stray += sum(not any(iou(g["box"], f.box) > 0.1 for g in gt) for f in faces)
    cap.release()
    assert expected > 100
    assert found / expected >= 0.95, (found, expected)
    assert stray <= 2


@pytest.mark.slow
def test_the_script_makes_the_same_clip_again(tmp_path, truth):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.mp4"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_demo_clip.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.with_suffix(".json").read_text()) == truth
    fresh, bundled = cv2.VideoCapture(str(out)), cv2.VideoCapture(str(DEMO_CLIP))
    for index in range(truth["frames"]):
        ok_a, a = fresh.read()
        ok_b, b = bundled.read()
        assert ok_a and ok_b
        if index % 40 == 0:
            assert np.abs(a.astype(np.int16) - b).mean() < 1.5, index
