"""Fit a frame into a square model input without distortion, and map results back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How a ``width`` x ``height`` frame sits inside a ``size`` x ``size`` square."""

    width: int
    height: int
    size: int
    scale: float
    pad_x: int
    pad_y: int
    inner_w: int
    inner_h: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        scale = size / max(width, height)
        inner_w = max(1, round(width * scale))
        inner_h = max(1, round(height * scale))
        return cls(
            width,
            height,
            size,
            scale,
            (size - inner_w) // 2,
            (size - inner_h) // 2,
            inner_w,
            inner_h,
        )

    def to_source(self, xy: np.ndarray) -> np.ndarray:
        """Map normalised [0, 1] coordinates of the square to source pixels (in place)."""
        xy[..., 0] = (xy[..., 0] * self.size - self.pad_x) / self.scale
        xy[..., 1] = (xy[..., 1] * self.size - self.pad_y) / self.scale
        return xy


class LetterboxBuffer:
    """Reusable square RGB buffer: resizes each frame into it without new allocations."""

    def __init__(self, size: int):
        self.size = size
        self.rgb = np.zeros((size, size, 3), np.uint8)
        self._geometry: Letterbox | None = None
        self._bgr_inner: np.ndarray | None = None

    def fill(self, image_bgr: np.ndarray) -> Letterbox:
        h, w = image_bgr.shape[:2]
        box = self._geometry
        if box is None or box.width != w or box.height != h:
            box = self._geometry = Letterbox.fit(w, h, self.size)
            self.rgb[:] = 0
            self._bgr_inner = np.empty((box.inner_h, box.inner_w, 3), np.uint8)
        inner = self.rgb[box.pad_y : box.pad_y + box.inner_h, box.pad_x : box.pad_x + box.inner_w]
        interpolation = cv2.INTER_AREA if box.scale < 1 else cv2.INTER_LINEAR
        cv2.resize(
            image_bgr, (box.inner_w, box.inner_h), dst=self._bgr_inner, interpolation=interpolation
        )
        cv2.cvtColor(self._bgr_inner, cv2.COLOR_BGR2RGB, dst=inner)
        return box
