"""The vendored models match their manifest: bytes, sizes, and what the interpreter reports."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
MANIFEST = tomllib.loads((MODELS / "manifest.toml").read_text(encoding="utf-8"))
ENTRIES = MANIFEST["models"]
TFLITE = sorted(name for name, e in ENTRIES.items() if e["file"].endswith(".tflite"))
EMOTION_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
REQUIRED = (
    "file",
    "sha256",
    "size",
    "source",
    "source_path",
    "license",
    "task",
    "runtime",
    "input_shape",
    "input_dtype",
    "preprocess",
)


def interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(MODELS / ENTRIES[name]["file"]), num_threads=1)


def test_schema_and_entries():
    assert MANIFEST["schema"] == 1
    assert set(ENTRIES) == {
        "blazeface_short",
        "blazeface_full",
        "emotion_int8",
        "fer_emotion_quantized",
        "ssd_face_edgetpu",
        "fer_emotion_keras",
    }


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_fields(name):
    entry = ENTRIES[name]
    missing = [key for key in REQUIRED if key not in entry]
    assert not missing, f"{name} lacks {missing}"
    assert entry["task"] in ("face-detection", "emotion", "emotion-source")
    assert entry["runtime"] in ("cpu", "edgetpu")
    assert entry["license"] in ("Apache-2.0", "MIT")
    assert "==" in entry["source"]
    if entry["task"].startswith("emotion"):
        assert entry["labels"] == EMOTION_LABELS


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_file_matches_sha256_and_size(name):
    entry = ENTRIES[name]
    path = MODELS / entry["file"]
    assert path.is_file(), f"{path} missing"
    data = path.read_bytes()
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("name", TFLITE)
def test_input_details_match_interpreter(name):
    entry = ENTRIES[name]
    detail = interpreter(name).get_input_details()[0]
    assert list(detail["shape"]) == entry["input_shape"]
    assert list(detail["shape_signature"]) == entry["input_shape"], "dynamic input shape"
    assert detail["dtype"].__name__ == entry["input_dtype"]
    scale, zero = detail["quantization"]
    if entry["input_dtype"] in ("int8", "uint8"):
        assert entry["input_quant"] == pytest.approx([scale, zero])
    else:
        assert "input_quant" not in entry


@pytest.mark.parametrize("name", TFLITE)
def test_output_quant_matches_interpreter(name):
    entry = ENTRIES[name]
    detail = interpreter(name).get_output_details()[0]
    scale, zero = detail["quantization"]
    if detail["dtype"].__name__ in ("int8", "uint8"):
        assert entry["output_quant"] == pytest.approx([scale, zero])
    else:
        assert "output_quant" not in entry


def test_keras_source_is_hdf5():
    data = (MODELS / ENTRIES["fer_emotion_keras"]["file"]).read_bytes()
    assert data[:8] == b"\x89HDF\r\n\x1a\n"


def test_blazeface_output_layout():
    """896 (short) and 2304 (full) anchors, 16 regressors each, one logit each."""
    for name, anchors in (("blazeface_short", 896), ("blazeface_full", 2304)):
        it = interpreter(name)
        shapes = sorted(tuple(d["shape"]) for d in it.get_output_details())
        assert shapes == [(1, anchors, 1), (1, anchors, 16)]


def test_edgetpu_ssd_is_compiled_for_the_tpu():
    ops = {op["op_name"] for op in interpreter("ssd_face_edgetpu")._get_ops_details()}
    assert "edgetpu-custom-op" in ops
    assert ENTRIES["ssd_face_edgetpu"]["runtime"] == "edgetpu"


def test_loader_verifies_every_model():
    """zeke's own loader accepts this manifest and every file passes its sha256 check."""
    from zeke.vision.models import verify_all

    results = verify_all(MODELS)
    assert {name for name, _, _ in results} == set(ENTRIES)
    assert all(ok for _, ok, _ in results), results


def test_emotion_models_output_probabilities(lfw_subset):
    """Both emotion models turn a real face into a 7-way distribution."""
    import cv2

    face = cv2.resize(np.rint(lfw_subset[0] * 255).astype(np.uint8), (64, 64))
    x = ((face.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]
    for name in ("emotion_int8", "fer_emotion_quantized"):
        it = interpreter(name)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            it.set_tensor(
                inp["index"], np.clip(np.rint(x / scale) + zero, -128, 127).astype(np.int8)
            )
        else:
            it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"])[0].astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        assert y.shape == (7,)
        assert y.sum() == pytest.approx(1.0, abs=0.02)
        assert (y >= 0).all()
