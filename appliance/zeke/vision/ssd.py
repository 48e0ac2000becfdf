"""Coral's Edge-TPU-compiled MobileNet SSD v2 face detector (320x320 uint8 input).

The model ends in TFLite's detection post-processing op, so its outputs are already boxes
(ymin, xmin, ymax, xmax in [0, 1] of the letterboxed input), classes, scores and a count.
It gives no keypoints: the emotion crop is then not eye-aligned.
"""

from __future__ import annotations

import numpy as np

from zeke.vision.detections import Detections
from zeke.vision.letterbox import Letterbox, LetterboxBuffer
from zeke.vision.runner import ModelRunner


def decode_postprocess(outputs: list[np.ndarray], box: Letterbox, min_score: float) -> Detections:
    """Turn the post-processing op's four outputs into source-pixel detections."""
    by_rank = sorted(outputs, key=lambda a: a.ndim, reverse=True)
    boxes = by_rank[0].reshape(-1, 4)
    rest = [a.reshape(-1) for a in by_rank[1:]]
    count_arr = next(a for a in rest if a.size == 1)
    count = int(count_arr[0])
    per_det = [a for a in rest if a.size == len(boxes)]
    scores = per_det[-1][:count] if per_det else np.zeros(count, np.float32)
    # classes and scores have the same shape; scores are the ones in (0, 1]
    for cand in per_det:
        if np.all((cand[:count] >= 0) & (cand[:count] <= 1)) and not np.all(cand[:count] == 0):
            scores = cand[:count]
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return Detections.empty()
    yxyx = boxes[keep].astype(np.float32)
    xy = np.stack([yxyx[:, [1, 0]], yxyx[:, [3, 2]]], 1)  # (K, 2 corners, x y)
    box.to_source(xy)
    out = xy.reshape(-1, 4)
    np.clip(out[:, 0::2], 0, box.width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, box.height, out=out[:, 1::2])
    return Detections(out, scores[keep].astype(np.float32), None)


class SsdFaceDetector:
    """Face detector on the Edge TPU: BGR frame in, ``Detections`` in source pixels out."""

    def __init__(self, runner: ModelRunner, min_score: float = 0.5):
        self.runner = runner
        self.min_score = min_score
        self.size = runner.input_shape[1]
        self._buffer = LetterboxBuffer(self.size)
        self._tensor = np.empty(runner.input_shape, runner.input_dtype)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        box = self._buffer.fill(image_bgr)
        self._tensor[0] = self._buffer.rgb
        return decode_postprocess(self.runner.run(self._tensor), box, self.min_score)
