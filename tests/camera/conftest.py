"""Clips and photo folders to use as cameras."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from zeke.resources import DEMO_CLIP


def write_clip(path: Path, frames: int, fps: float = 30.0, size=(160, 120)) -> Path:
    """A clip whose frame ``i`` shows ``i`` in binary: eight black or white bars, bit 0 left.

    Flat bars survive lossy coding, so ``frame_number`` reads the position back exactly.
    """
    assert frames <= 256
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    bar = width // 8
    for i in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        for bit in range(8):
            if i >> bit & 1:
                image[:, bit * bar : (bit + 1) * bar] = 255
        writer.write(image)
    writer.release()
    return path


def frame_number(image: np.ndarray) -> int:
    """Which frame of ``write_clip`` this is (the middle of each bar, thresholded)."""
    bar = image.shape[1] // 8
    row = image[image.shape[0] // 2]
    return sum(1 << bit for bit in range(8) if row[bit * bar + bar // 2].mean() > 127)


@pytest.fixture
def short_clip(tmp_path) -> Path:
    return write_clip(tmp_path / "short.mp4", 12)


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    target = tmp_path / "demo.mp4"
    shutil.copyfile(DEMO_CLIP, target)
    return target


@pytest.fixture
def photo_dir(tmp_path, astronaut_bgr, grace_hopper_bgr) -> Path:
    """img1.png, img2.jpg, img10.png: natural order is 1, 2, 10 (plain sort says 1, 10, 2)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "img1.png"), astronaut_bgr)
    cv2.imwrite(str(folder / "img2.jpg"), grace_hopper_bgr)
    cv2.imwrite(str(folder / "img10.png"), cv2.flip(astronaut_bgr, 1))
    (folder / "notes.txt").write_text("not an image")
    return folder
