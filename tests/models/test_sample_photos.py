"""The bundled sample photos: present in the package, small, decodable, one face each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import pytest

# The samples as the installed package holds them (not the checkout path).
SAMPLES = Path(importlib.util.find_spec("zeke").origin).parent / "data" / "samples"


@pytest.mark.parametrize(
    ("name", "shape"), [("astronaut.jpg", (512, 512, 3)), ("grace_hopper.jpg", (600, 512, 3))]
)
def test_sample_photo(name, shape):
    path = SAMPLES / name
    assert path.stat().st_size < 200_000
    image = cv2.imread(str(path))
    assert image is not None and image.shape == shape
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(80, 80))
    assert len(faces) == 1


def test_provenance_is_documented():
    text = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert "astronaut.jpg" in text and "grace_hopper.jpg" in text
    assert "public domain" in text
