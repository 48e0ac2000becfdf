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


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of many (x0, y0, x1, y1)."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


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
