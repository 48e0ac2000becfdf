"""The per-frame vision pipeline: detect faces, classify each face's emotion.

``FacePipeline.create`` picks the detector and backend (Edge TPU when present and asked for,
else CPU, always with a reason) and verifies every model it loads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from zeke.errors import UsageError
from zeke.vision.backends import CpuBackend, select_backend
from zeke.vision.blazeface import KEYPOINT_NAMES, SPECS, BlazeFace
from zeke.vision.detections import Detections
from zeke.vision.emotion import EmotionClassifier
from zeke.vision.models import Manifest, load_manifest
from zeke.vision.runner import load_runner
from zeke.vision.ssd import SsdFaceDetector

DETECTORS = ("short", "full", "ssd", "auto")
DETECTOR_MODELS = {"short": "blazeface_short", "full": "blazeface_full", "ssd": "ssd_face_edgetpu"}
EMOTION_MODEL = "emotion_int8"


@dataclass
class Face:
    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None
    emotion: str | None = None
    emotion_score: float | None = None
    emotions: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(self.score, 4),
            "keypoints": (
                {
                    n: [round(float(x), 1), round(float(y), 1)]
                    for n, (x, y) in zip(KEYPOINT_NAMES, self.keypoints)
                }
                if self.keypoints is not None
                else None
            ),
            "emotion": self.emotion,
            "emotion_score": None if self.emotion_score is None else round(self.emotion_score, 4),
            "emotions": {k: round(v, 4) for k, v in self.emotions.items()},
        }


@dataclass
class FrameResult:
    width: int
    height: int
    faces: list[Face]
    timings_ms: dict[str, float]


def validate_min_score(min_score: float) -> float:
    if not 0.0 < min_score < 1.0:
        raise UsageError(
            f"--min-score must be between 0 and 1 (exclusive), got {min_score:g}",
            hint="typical values are 0.5 to 0.75",
        )
    return min_score


class FacePipeline:
    """Detector + emotion classifier with per-stage timings."""

    def __init__(self, detector, classifier: EmotionClassifier | None, info: dict):
        self.detector = detector
        self.classifier = classifier
        self.backend_info = info
        self.labels = classifier.labels if classifier else ()

    @classmethod
    def create(
        cls,
        detector: str = "short",
        backend: str = "auto",
        threads: int = 1,
        min_score: float = 0.5,
        models_dir: str | os.PathLike | None = None,
        classify: bool = True,
        emotion_model: str = EMOTION_MODEL,
    ) -> FacePipeline:
        if detector not in DETECTORS:
            raise UsageError(
                f"unknown detector '{detector}'", hint=f"choose one of: {', '.join(DETECTORS)}"
            )
        validate_min_score(min_score)
        if threads < 1:
            raise UsageError(f"threads must be at least 1, got {threads}")
        manifest = load_manifest(models_dir)
        selection = select_backend(backend)
        chosen, reason = detector, selection.reason
        if detector in ("ssd", "auto"):
            if selection.name == "edgetpu":
                chosen = "ssd"
            else:
                chosen = "short"
                if detector == "ssd":
                    reason = (
                        f"{reason}; the SSD face model needs the Edge TPU, "
                        "using BlazeFace short-range"
                    )
        elif selection.name == "edgetpu":
            reason = f"{reason}; BlazeFace runs on the CPU (no Edge TPU build of it)"
        cpu = CpuBackend()
        if chosen == "ssd":
            runner = load_runner(manifest, DETECTOR_MODELS["ssd"], selection.backend, threads)
            det = SsdFaceDetector(runner, min_score=min_score)
        else:
            runner = load_runner(manifest, DETECTOR_MODELS[chosen], cpu, threads)
            det = BlazeFace(runner, SPECS[chosen], min_score=min_score)
        classifier = None
        if classify:
            classifier = EmotionClassifier(load_runner(manifest, emotion_model, cpu, threads))
        info = {
            "detector": chosen,
            "detector_model": runner.entry.file,
            "detect_backend": runner.backend,
            "classify_backend": "cpu" if classify else None,
            "emotion_model": manifest.entry(emotion_model).file if classify else None,
            "backend": selection.name,
            "requested_backend": backend,
            "reason": reason,
            "threads": threads,
            "models_dir": str(manifest.directory),
        }
        return cls(det, classifier, info)

    @staticmethod
    def manifest(models_dir: str | os.PathLike | None = None) -> Manifest:
        return load_manifest(models_dir)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detector.detect(image_bgr)

    def process(self, image_bgr: np.ndarray) -> FrameResult:
        t0 = time.perf_counter()
        dets = self.detector.detect(image_bgr)
        t1 = time.perf_counter()
        faces = [
            Face(
                box=tuple(float(v) for v in dets.boxes[i]),
                score=float(dets.scores[i]),
                keypoints=dets.keypoints[i] if dets.keypoints is not None else None,
            )
            for i in range(len(dets))
        ]
        if self.classifier is not None and faces:
            probs = self.classifier.classify(image_bgr, dets.boxes, dets.keypoints)
            for face, p in zip(faces, probs):
                top = int(np.argmax(p))
                face.emotion = self.labels[top]
                face.emotion_score = float(p[top])
                face.emotions = {label: float(v) for label, v in zip(self.labels, p)}
        t2 = time.perf_counter()
        h, w = image_bgr.shape[:2]
        return FrameResult(w, h, faces, {"detect": (t1 - t0) * 1e3, "classify": (t2 - t1) * 1e3})
