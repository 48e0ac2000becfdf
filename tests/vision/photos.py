"""Real photos and composed scenes with known face positions, shared by tests and benchmarks."""

from __future__ import annotations

import cv2
import numpy as np

# Face boxes (x0, y0, x1, y1) in the original photos, measured once by eye and detector.
ASTRONAUT_FACE = (176.0, 76.0, 276.0, 175.0)
GRACE_HOPPER_FACE = (162.0, 131.0, 366.0, 336.0)
ASTRONAUT_HEAD = (120, 20, 340, 260)  # x0, y0, x1, y1 crop with hair and shoulders
GRACE_HOPPER_HEAD = (100, 60, 430, 420)


def _background(width: int, height: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 70 + 60 * (xs / width) + 30 * np.sin(ys / 90.0)
    img = np.repeat(base[:, :, None], 3, axis=2) + rng.normal(0, 6, (height, width, 3))
    img[..., 0] += 20
    return np.clip(img, 0, 255).astype(np.uint8)


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int, scale: float):
    """Paste ``patch`` scaled by ``scale`` with its top-left at (x, y); return (scale, x, y)."""
    h, w = patch.shape[:2]
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(
        patch, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    canvas[y : y + nh, x : x + nw] = resized
    return nw, nh


def _head(photo: np.ndarray, region, face, mirror: bool):
    """Crop a head-and-shoulders patch; return it with the face box in patch coordinates."""
    x0, y0, x1, y1 = region
    patch = photo[y0:y1, x0:x1]
    fx0, fy0, fx1, fy1 = face[0] - x0, face[1] - y0, face[2] - x0, face[3] - y0
    if mirror:
        patch = np.ascontiguousarray(patch[:, ::-1])
        fx0, fx1 = (x1 - x0) - fx1, (x1 - x0) - fx0
    return patch, (fx0, fy0, fx1, fy1)


def group_picture(astronaut_bgr, grace_bgr, lfw) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """A 1280x720 group picture of 7 real faces (130-260 px) at different scales and places.

    LFW crops are 25x25, so they are scaled up 8-9x: smaller than ~120 px they are too
    blurry for any detector to be sure of.

    Returns the image and each face's box where it was pasted.
    """
    canvas = _background(1280, 720)
    truth: list[tuple[float, ...]] = []
    for photo, region, face, x, y, scale, mirror in (
        (astronaut_bgr, ASTRONAUT_HEAD, ASTRONAUT_FACE, 20, 30, 1.3, False),
        (grace_bgr, GRACE_HOPPER_HEAD, GRACE_HOPPER_FACE, 330, 340, 1.0, False),
        (astronaut_bgr, ASTRONAUT_HEAD, ASTRONAUT_FACE, 900, 320, 1.6, True),
    ):
        patch, (fx0, fy0, fx1, fy1) = _head(photo, region, face, mirror)
        paste(canvas, patch, x, y, scale)
        truth.append((x + fx0 * scale, y + fy0 * scale, x + fx1 * scale, y + fy1 * scale))
    # LFW crops are tight 25x25 face crops: the whole crop is the face
    for idx, (x, y, side) in zip(
        (0, 17, 34, 51), ((330, 10, 200), (560, 60, 220), (800, 20, 200), (1060, 60, 200))
    ):
        face = cv2.cvtColor((lfw[idx] * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        canvas[y : y + side, x : x + side] = cv2.resize(
            face, (side, side), interpolation=cv2.INTER_LINEAR
        )
        truth.append((x, y, x + side, y + side))
    return canvas, truth


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
