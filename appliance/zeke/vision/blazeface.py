"""BlazeFace short- and full-range face detection, decoded in numpy.

Anchors are computed once per model. Each frame costs one letterbox resize, one invoke, a
vectorised decode of the anchors above the score threshold, and weighted NMS over the few
that remain. Boxes and the six keypoints (eyes, nose tip, mouth, ear tragions) come back in
source pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zeke.vision.detections import Detections, weighted_nms
from zeke.vision.letterbox import LetterboxBuffer
from zeke.vision.runner import ModelRunner

NUM_KEYPOINTS = 6
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor layout of a BlazeFace model (fixed-size anchors: only centres matter)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 1 aspect ratio, +1 when an interpolated scale is used
    offset: float = 0.5

    def centres(self) -> np.ndarray:
        """(N, 2) anchor centres in [0, 1], in the order the model emits them."""
        out = []
        i = 0
        while i < len(self.strides):
            stride = self.strides[i]
            same = 0
            while i < len(self.strides) and self.strides[i] == stride:
                same += 1
                i += 1
            cells = -(-self.input_size // stride)
            ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
            grid = np.stack([(xs + self.offset) / cells, (ys + self.offset) / cells], -1)
            per_cell = same * self.anchors_per_layer
            out.append(np.repeat(grid.reshape(-1, 2), per_cell, axis=0))
        return np.concatenate(out).astype(np.float32)


SHORT_RANGE = AnchorSpec(input_size=128, strides=(8, 16, 16, 16), anchors_per_layer=2)
FULL_RANGE = AnchorSpec(input_size=192, strides=(4,), anchors_per_layer=1)
SPECS = {"short": SHORT_RANGE, "full": FULL_RANGE}


class BlazeFace:
    """Face detector: BGR frame in, ``Detections`` in source pixels out."""

    def __init__(
        self,
        runner: ModelRunner,
        spec: AnchorSpec,
        min_score: float = 0.5,
        nms_threshold: float = 0.3,
    ):
        self.runner = runner
        self.spec = spec
        self.min_score = min_score
        self.nms_threshold = nms_threshold
        self.anchors = spec.centres()
        expected = runner.input_shape[1]
        if expected != spec.input_size:
            raise ValueError(f"model input {expected} does not match anchors {spec.input_size}")
        outputs = runner.outputs
        self._reg = next(i for i, o in enumerate(outputs) if o["shape"][-1] == 16)
        self._cls = next(i for i, o in enumerate(outputs) if o["shape"][-1] == 1)
        if int(outputs[self._reg]["shape"][1]) != len(self.anchors):
            raise ValueError("model output does not match the anchor layout")
        self._buffer = LetterboxBuffer(spec.input_size)
        self._tensor = np.empty((1, spec.input_size, spec.input_size, 3), np.float32)
        # logit(min_score): compare raw scores, apply the sigmoid only to survivors
        p = min(max(min_score, 1e-6), 1 - 1e-6)
        self._raw_threshold = float(np.log(p / (1 - p)))

    def detect(self, image_bgr: np.ndarray) -> Detections:
        box = self._buffer.fill(image_bgr)
        np.multiply(self._buffer.rgb, 1 / 127.5, out=self._tensor[0], casting="unsafe")
        self._tensor -= 1.0
        outputs = self.runner.run(self._tensor)
        raw_scores = outputs[self._cls][0, :, 0]
        keep = np.flatnonzero(raw_scores > self._raw_threshold)
        if keep.size == 0:
            return Detections.empty(NUM_KEYPOINTS)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -100.0, 100.0)))
        reg = outputs[self._reg][0, keep] / self.spec.input_size
        centres = self.anchors[keep]
        cx = reg[:, 0] + centres[:, 0]
        cy = reg[:, 1] + centres[:, 1]
        half_w = reg[:, 2] / 2
        half_h = reg[:, 3] / 2
        corners = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], -1).reshape(
            -1, 2, 2
        )
        keypoints = reg[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centres[:, None, :]
        box.to_source(corners)
        box.to_source(keypoints)
        boxes = corners.reshape(-1, 4)
        dets = weighted_nms(
            Detections(
                boxes.astype(np.float32), scores.astype(np.float32), keypoints.astype(np.float32)
            ),
            self.nms_threshold,
        )
        np.clip(dets.boxes[:, 0::2], 0, box.width, out=dets.boxes[:, 0::2])
        np.clip(dets.boxes[:, 1::2], 0, box.height, out=dets.boxes[:, 1::2])
        return dets
