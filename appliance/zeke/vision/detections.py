"""Face detections as plain arrays, and the weighted non-maximum suppression they go through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """``boxes`` (K, 4) x0 y0 x1 y1, ``scores`` (K,), ``keypoints`` (K, P, 2) or None."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, keypoints: int = 0) -> Detections:
        kps = np.zeros((0, keypoints, 2), np.float32) if keypoints else None
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), kps)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of x0, y0, x1, y1 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of many (x0, y0, x1, y1)."""
    return iou_matrix(box[None], boxes)[0]


def weighted_nms(dets: Detections, threshold: float) -> Detections:
    """Blend each cluster of overlapping detections into one, weighted by score.

    BlazeFace fires on several neighbouring anchors per face; averaging them (rather than
    keeping only the best) gives steadier boxes and keypoints from frame to frame.
    """
    if len(dets) <= 1:
        return dets
    order = np.argsort(-dets.scores)
    boxes, scores = dets.boxes[order], dets.scores[order]
    kps = dets.keypoints[order] if dets.keypoints is not None else None
    out_boxes, out_scores, out_kps = [], [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        member = iou_one_to_many(boxes[top], boxes[remaining]) > threshold
        member[0] = True  # a degenerate box overlaps nothing, not even itself
        cluster = remaining[member]
        remaining = remaining[~member]
        weights = scores[cluster][:, None]
        total = weights.sum()
        out_boxes.append((boxes[cluster] * weights).sum(0) / total)
        out_scores.append(scores[top])
        if kps is not None:
            out_kps.append((kps[cluster] * weights[:, :, None]).sum(0) / total)
    return Detections(
        np.asarray(out_boxes, np.float32),
        np.asarray(out_scores, np.float32),
        np.asarray(out_kps, np.float32) if kps is not None else None,
    )
