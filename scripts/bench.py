#!/usr/bin/env python3
"""Per-stage speed of the vision core on 640x480 frames with 0, 1 and 3 real faces.

Measures decode (JPEG), detect, classify and total (median and p95 over --frames frames,
one interpreter thread) for BlazeFace short and full range, and the same frames through a
baseline of OpenCV's Haar cascade + the same emotion model; recall of each detector on the
frames' known faces and on the 100 LFW faces; and `zeke detect` cold start to first result.

    .venv/bin/python scripts/bench.py [--frames 300] [--out out/bench.json]

Needs scikit-image and matplotlib (the test extra) for the photos. Numbers only: nothing
here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _photos():
    import matplotlib.cbook
    from skimage import data

    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    grace = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return astro, grace, data.lfw_subset()


def make_frames() -> dict[int, tuple[np.ndarray, list[tuple[float, ...]]]]:
    """640x480 frames with 0, 1 and 3 faces, and where each face is."""
    astro, grace, _ = _photos()
    heads = [  # (photo, head crop x0 y0 x1 y1, face box in photo)
        (astro, (120, 20, 340, 260), (176, 76, 276, 175)),
        (grace, (100, 60, 430, 420), (162, 131, 366, 336)),
        (astro[:, ::-1].copy(), (172, 20, 392, 260), (236, 76, 336, 175)),
    ]
    base = np.full((480, 640, 3), 90, np.uint8)
    base[:, :, 0] = 110
    frames = {0: (base.copy(), [])}
    placements = {
        1: [(0, 200, 100, 0.9)],
        3: [(0, 10, 40, 0.75), (1, 220, 150, 0.55), (2, 440, 60, 0.75)],
    }
    for count, places in placements.items():
        img = base.copy()
        truth = []
        for idx, x, y, s in places:
            photo, (hx0, hy0, hx1, hy1), (fx0, fy0, fx1, fy1) = heads[idx]
            patch = cv2.resize(
                photo[hy0:hy1, hx0:hx1], None, fx=s, fy=s, interpolation=cv2.INTER_AREA
            )
            h, w = patch.shape[:2]
            h, w = min(h, 480 - y), min(w, 640 - x)
            img[y : y + h, x : x + w] = patch[:h, :w]
            truth.append(
                (x + (fx0 - hx0) * s, y + (fy0 - hy0) * s, x + (fx1 - hx0) * s, y + (fy1 - hy0) * s)
            )
        frames[count] = (img, truth)
    return frames


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, the classic baseline."""

    def __init__(self):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))

    def boxes(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24)
        )
        if len(found) == 0:
            return np.zeros((0, 4), np.float32)
        found = np.asarray(found, np.float32)
        return np.column_stack(
            [found[:, 0], found[:, 1], found[:, 0] + found[:, 2], found[:, 1] + found[:, 3]]
        )


def stats(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples)
    return {
        "median": round(float(np.median(arr)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
    }


def bench_pipeline(name, detect_fn, classifier, jpeg: bytes, n: int) -> dict:
    timings = {"decode": [], "detect": [], "classify": [], "total": []}
    for _ in range(n):
        t0 = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        boxes, kps = detect_fn(image)
        t2 = time.perf_counter()
        if len(boxes):
            classifier.classify(image, boxes, kps)
        t3 = time.perf_counter()
        for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            value *= 1e3
            timings[key].append(value)
    return {stage: stats(v) for stage, v in timings.items()}


def recall(detect_fn, frames, lfw) -> dict[str, float]:
    hits = total = 0
    for img, truth in frames.values():
        boxes, _ = detect_fn(img)
        for t in truth:
            total += 1
            hits += any(iou(t, b) >= 0.3 for b in boxes)
    lfw_hits = 0
    for crop in lfw[:100]:
        gray = cv2.resize((crop * 255).astype(np.uint8), (128, 128), interpolation=cv2.INTER_LINEAR)
        boxes, _ = detect_fn(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
        lfw_hits += len(boxes) > 0
    return {"frames": round(hits / total, 3), "lfw_faces": lfw_hits / 100}


def cold_start(runs: int = 3) -> dict[str, float]:
    sample = REPO / "appliance" / "zeke" / "data" / "samples" / "astronaut.jpg"
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "zeke", "detect", "--json", str(sample)],
            check=True,
            capture_output=True,
        )
        times.append((time.perf_counter() - t0) * 1e3)
    return {"min_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench.json")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from zeke.vision.pipeline import FacePipeline

    frames = make_frames()
    _, _, lfw = _photos()
    results: dict = {"frames_per_case": args.frames, "threads": 1, "cases": {}}
    pipelines = {
        name: FacePipeline.create(detector=name, backend="cpu", threads=1)
        for name in ("short", "full")
    }
    haar = HaarDetector()
    classifier = pipelines["short"].classifier

    def blaze(p):
        def run(img):
            d = p.detect(img)
            return d.boxes, d.keypoints

        return run

    def haar_fn(img):
        return haar.boxes(img), None

    detectors = {
        "blazeface-short": blaze(pipelines["short"]),
        "blazeface-full": blaze(pipelines["full"]),
        "haar": haar_fn,
    }
    for name, fn in detectors.items():
        for count, (img, _) in frames.items():
            jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            bench_pipeline(name, fn, classifier, jpeg, 20)  # warm up
            results["cases"][f"{name}/{count}-face"] = bench_pipeline(
                name, fn, classifier, jpeg, args.frames
            )
        results.setdefault("recall", {})[name] = recall(fn, frames, lfw)
    results["cold_start_detect"] = cold_start()
    short1 = results["cases"]["blazeface-short/1-face"]["total"]["median"]
    haar1 = results["cases"]["haar/1-face"]["total"]["median"]
    results["speedup_short_vs_haar_1face"] = round(haar1 / short1, 2)

    table = Table(title=f"zeke vision core, 640x480, 1 thread, {args.frames} frames per case (ms)")
    for col in (
        "case",
        "decode p50",
        "detect p50",
        "detect p95",
        "classify p50",
        "total p50",
        "total p95",
    ):
        table.add_column(col, justify="right" if col != "case" else "left", no_wrap=True)
    for case, r in results["cases"].items():
        cells = [r["decode"]["median"], r["detect"]["median"], r["detect"]["p95"]]
        cells += [r["classify"]["median"], r["total"]["median"], r["total"]["p95"]]
        table.add_row(case, *(f"{v:.2f}" for v in cells))
    console = Console()
    console.print(table)
    console.print(f"recall: {json.dumps(results['recall'])}")
    console.print(
        "speed-up of BlazeFace short over Haar (1 face, total): "
        f"{results['speedup_short_vs_haar_1face']}x"
    )
    console.print(f"zeke detect cold start: {results['cold_start_detect']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
