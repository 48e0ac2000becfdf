"""A short real clip (the astronaut walking across a plain background) for watch tests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def walking_clip(tmp_path_factory, astronaut_bgr) -> str:
    """150 frames at 15 fps: a face crosses the frame for 120 frames, then 30 empty frames."""
    path = tmp_path_factory.mktemp("clips") / "walk.mp4"
    head = cv2.resize(astronaut_bgr[20:260, 120:340], (176, 192))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (640, 480))
    for i in range(150):
        frame = np.full((480, 640, 3), 80, np.uint8)
        if i < 120:
            x = 20 + 2 * i
            frame[100:292, x : x + 176] = head
        writer.write(frame)
    writer.release()
    return str(path)
