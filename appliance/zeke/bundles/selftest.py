"""Self-test of a models directory: the new models must see what we know is in the photos.

The expectations live here, in zeke, not in the bundle: a bundle cannot loosen its own test.
Each sample photo shipped with zeke holds exactly one frontal face whose box was marked by
hand; every pipeline the bundle enables (each CPU detector with the default emotion model,
each emotion model with the default detector, the Edge TPU detector when a TPU is present)
must find exactly that one face (IoU >= 0.5 with the marked box, score >= 0.5) and its
emotion (the label below, probability >= 0.5).

``run_self_test`` runs the checks in a child process, so a model that crashes the interpreter
fails the self-test instead of killing the installer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zeke.bundles.errors import SelfTestFailed
from zeke.resources import SAMPLES_DIR

MIN_IOU = 0.5
MIN_FACE_SCORE = 0.5
MIN_EMOTION_PROB = 0.5
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Expectation:
    sample: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, marked by hand
    emotion: str


EXPECTATIONS = (
    Expectation("astronaut.jpg", (176.0, 78.0, 274.0, 177.0), "happy"),
    Expectation("grace_hopper.jpg", (163.0, 135.0, 367.0, 338.0), "neutral"),
)


@dataclass
class Check:
    pipeline: str
    sample: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    faces: list[dict] = field(default_factory=list)


@dataclass
class SelfTestReport:
    models_dir: str
    ok: bool
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def failures(self) -> list[str]:
        found = [
            f"{c.pipeline} on {c.sample}: {'; '.join(c.problems)}" for c in self.checks if not c.ok
        ]
        return ([self.error] if self.error else []) + found

    def to_dict(self) -> dict:
        return asdict(self)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _plans(models_dir: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(detector, backend, emotion model) for every pipeline the bundle enables, and notes."""
    from zeke.vision.backends import select_backend
    from zeke.vision.models import load_manifest
    from zeke.vision.pipeline import DETECTOR_MODELS, EMOTION_MODEL

    manifest = load_manifest(models_dir)
    notes: list[str] = []
    plans: list[tuple[str, str, str]] = [("short", "cpu", EMOTION_MODEL)]
    if DETECTOR_MODELS["full"] in manifest.models:
        plans.append(("full", "cpu", EMOTION_MODEL))
    for name, entry in manifest.models.items():
        if entry.task == "emotion" and entry.runtime == "cpu" and name != EMOTION_MODEL:
            plans.append(("short", "cpu", name))
    if DETECTOR_MODELS["ssd"] in manifest.models:
        selection = select_backend("edgetpu")
        if selection.name == "edgetpu":
            plans.append(("ssd", "edgetpu", EMOTION_MODEL))
        else:
            notes.append(f"{DETECTOR_MODELS['ssd']} not tested: no Edge TPU here")
    return plans, notes


def check_expectation(pipeline_name: str, result, expected: Expectation) -> Check:
    faces = [
        {
            "box": [round(v, 1) for v in face.box],
            "score": round(face.score, 4),
            "emotion": face.emotion,
            "emotion_score": None if face.emotion_score is None else round(face.emotion_score, 4),
        }
        for face in result.faces
    ]
    problems: list[str] = []
    if len(result.faces) != 1:
        problems.append(f"found {len(result.faces)} faces, expected exactly 1")
    else:
        face = result.faces[0]
        overlap = iou(face.box, expected.box)
        if overlap < MIN_IOU:
            problems.append(f"face box overlaps the known face by IoU {overlap:.2f} < {MIN_IOU}")
        if face.score < MIN_FACE_SCORE:
            problems.append(f"face score {face.score:.2f} < {MIN_FACE_SCORE}")
        probability = face.emotions.get(expected.emotion, 0.0)
        if face.emotion != expected.emotion or probability < MIN_EMOTION_PROB:
            problems.append(
                f"emotion {face.emotion} ({face.emotion_score or 0:.2f}), expected "
                f"{expected.emotion} with p >= {MIN_EMOTION_PROB}"
            )
    return Check(pipeline_name, expected.sample, not problems, problems, faces)


def run_checks(models_dir: Path) -> SelfTestReport:
    """Run every pipeline the bundle enables on every sample, in this process."""
    import cv2

    from zeke.errors import ZekeError
    from zeke.vision.pipeline import FacePipeline

    report = SelfTestReport(str(models_dir), ok=False)
    try:
        plans, report.notes = _plans(models_dir)
        images = {}
        for expected in EXPECTATIONS:
            image = cv2.imread(str(SAMPLES_DIR / expected.sample), cv2.IMREAD_COLOR)
            if image is None:
                raise SelfTestFailed(
                    f"sample photo {SAMPLES_DIR / expected.sample} is missing or unreadable",
                    hint="reinstall zeke: the self-test needs its sample photos",
                )
            images[expected.sample] = image
        for detector, backend, emotion_model in plans:
            label = f"{detector}/{backend} + {emotion_model}"
            pipeline = FacePipeline.create(
                detector=detector,
                backend=backend,
                threads=1,
                min_score=MIN_FACE_SCORE,
                models_dir=models_dir,
                emotion_model=emotion_model,
            )
            for expected in EXPECTATIONS:
                result = pipeline.process(images[expected.sample])
                report.checks.append(check_expectation(label, result, expected))
    except ZekeError as err:
        report.error = err.message
    report.ok = report.error is None and bool(report.checks) and all(c.ok for c in report.checks)
    return report


def run_self_test(models_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> SelfTestReport:
    """Run the self-test in a child process; raise SelfTestFailed unless every check passes."""
    argv = [sys.executable, "-m", "zeke.bundles.selftest", str(models_dir), "--json"]
    env = {k: v for k, v in os.environ.items() if k != "ZEKE_MODELS_DIR"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise SelfTestFailed(
            f"the self-test did not finish within {timeout:.0f} s",
            hint="the models are far too slow or hang on this board; do not ship them",
        ) from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise SelfTestFailed(
            f"the new models crashed the self-test ({name})",
            hint="the bundle's models crash the interpreter; do not ship it",
        )
    try:
        document = json.loads((done.stdout.strip().splitlines() or ["null"])[-1])
        report = SelfTestReport(
            models_dir=document["models_dir"],
            ok=document["ok"],
            checks=[Check(**c) for c in document["checks"]],
            notes=document["notes"],
            error=document["error"],
        )
    except (ValueError, KeyError, TypeError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SelfTestFailed(
            f"the self-test exited with status {done.returncode}: {last}"
        ) from None
    if not report.ok:
        failures = report.failures() or ["no check ran"]
        raise SelfTestFailed(
            f"self-test failed: {failures[0]}"
            + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""),
            hint="the bundle's models do not find the known faces and emotions; do not ship it",
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Self-test a models directory.")
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run_checks(args.models_dir)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        for check in report.checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.pipeline} on {check.sample}")
            for problem in check.problems:
                print(f"     {problem}")
        for line in [*report.notes, *([report.error] if report.error else [])]:
            print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
