"""Facial emotion from a face box: an eye-aligned square crop, 64x64 gray, one invoke.

The crop is taken with a single ``warpAffine`` straight from the BGR frame to 64x64 (only
the output pixels are computed), then converted to gray and quantised through a 256-entry
lookup table, so the cost per face is a few microseconds before the model runs.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from zeke.vision.runner import ModelRunner

DEFAULT_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class EmotionClassifier:
    """mini-XCEPTION (FER2013) on a 64x64 gray face; int8 or float models alike."""

    def __init__(self, runner: ModelRunner, expand: float = 1.3, align: bool = True):
        self.runner = runner
        self.labels = runner.entry.labels or DEFAULT_LABELS
        self.size = runner.input_shape[1]
        self.expand = expand
        self.align = align
        self._crop = np.empty((self.size, self.size, 3), np.uint8)
        self._gray = np.empty((self.size, self.size), np.uint8)
        self._tensor = np.empty(runner.input_shape, runner.input_dtype)
        # fer's preprocessing: x / 255, then (x - 0.5) * 2, i.e. gray to [-1, 1]
        normalised = (np.arange(256, dtype=np.float64) / 255.0 - 0.5) * 2.0
        if runner.input_dtype.kind == "i" or runner.input_dtype.kind == "u":
            scale, zero = runner.input_quant
            info = np.iinfo(runner.input_dtype)
            q = np.clip(np.round(normalised / scale) + zero, info.min, info.max)
            self._lut = q.astype(runner.input_dtype)
        else:
            self._lut = normalised.astype(runner.input_dtype)
        out_dtype = np.dtype(runner.outputs[0]["dtype"])
        self._out_quant = runner.output_quant(0) if out_dtype.kind in "iu" else None

    def crop_matrix(self, box: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray:
        """Affine map from the frame to the model's square input for one face."""
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0) * self.expand
        angle = 0.0
        if self.align and keypoints is not None:
            (rx, ry), (lx, ly) = keypoints[0], keypoints[1]
            angle = math.degrees(math.atan2(float(ly - ry), float(lx - rx)))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, self.size / max(side, 1.0))
        matrix[0, 2] += self.size / 2 - cx
        matrix[1, 2] += self.size / 2 - cy
        return matrix

    def gray_crop(
        self, image_bgr: np.ndarray, box: np.ndarray, keypoints: np.ndarray | None
    ) -> np.ndarray:
        """The 64x64 gray face the model sees (a view into a reused buffer)."""
        cv2.warpAffine(
            image_bgr,
            self.crop_matrix(box, keypoints),
            (self.size, self.size),
            dst=self._crop,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        cv2.cvtColor(self._crop, cv2.COLOR_BGR2GRAY, dst=self._gray)
        return self._gray

    def classify_gray(self, gray: np.ndarray) -> np.ndarray:
        """Probabilities (7,) for one 64x64 gray uint8 face."""
        self._tensor[0, :, :, 0] = self._lut[gray]
        out = self.runner.run(self._tensor)[0][0]
        if self._out_quant is not None:
            scale, zero = self._out_quant
            return (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    def classify(
        self, image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None
    ) -> np.ndarray:
        """(K, 7) probabilities for K faces of one frame."""
        probs = np.empty((len(boxes), len(self.labels)), np.float32)
        for i, box in enumerate(boxes):
            kps = keypoints[i] if keypoints is not None else None
            probs[i] = self.classify_gray(self.gray_crop(image_bgr, box, kps))
        return probs
