"""The real models on real photos: scikit-image, matplotlib and LFW faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zeke.vision.pipeline import FacePipeline

from .photos import ASTRONAUT_FACE, GRACE_HOPPER_FACE, group_picture, iou


@pytest.fixture(scope="module")
def short():
    return FacePipeline.create(detector="short")


@pytest.fixture(scope="module")
def full():
    return FacePipeline.create(detector="full")


@pytest.mark.parametrize("name", ["short", "full"])
def test_astronaut_one_happy_face(request, astronaut_bgr, name):
    result = request.getfixturevalue(name).process(astronaut_bgr)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert iou(face.box, ASTRONAUT_FACE) >= 0.7
    assert face.emotion == "happy"
    assert face.emotions["happy"] == max(face.emotions.values())


@pytest.mark.parametrize("name", ["short", "full"])
def test_grace_hopper_one_face(request, grace_hopper_bgr, name):
    result = request.getfixturevalue(name).process(grace_hopper_bgr)
    assert len(result.faces) == 1
    assert iou(result.faces[0].box, GRACE_HOPPER_FACE) >= 0.7
    assert sum(result.faces[0].emotions.values()) == pytest.approx(1.0, abs=0.02)


def test_lfw_subset_faces_and_non_faces(short, lfw_subset):
    """Each 25x25 crop scaled to the short-range input: >= 97/100 faces, <= 2/100 non-faces."""
    size = short.detector.spec.input_size
    found = []
    for crop in lfw_subset:
        gray = cv2.resize(
            (crop * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR
        )
        found.append(len(short.detect(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))) > 0)
    faces_found = sum(found[:100])
    false_faces = sum(found[100:])
    print(f"lfw_subset: {faces_found}/100 faces found, {false_faces}/100 non-faces with a face")
    assert faces_found >= 97
    assert false_faces <= 2


def test_group_picture_full_range_finds_everyone(full, astronaut_bgr, grace_hopper_bgr, lfw_subset):
    image, truth = group_picture(astronaut_bgr, grace_hopper_bgr, lfw_subset)
    assert image.shape == (720, 1280, 3) and len(truth) >= 6
    result = full.process(image)
    boxes = [f.box for f in result.faces]
    for expected in truth:
        best = max((iou(expected, b) for b in boxes), default=0.0)
        assert best >= 0.5, f"face at {expected} not found (best IoU {best:.2f})"
    assert len(result.faces) == len(truth)
    assert all(f.emotion is not None for f in result.faces)
