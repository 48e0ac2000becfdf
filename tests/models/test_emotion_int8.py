"""The full-integer emotion model: Edge-TPU-shaped, and faithful to fer's own model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
# Ops the Edge TPU compiler maps; the int8 model must use nothing else.
EDGETPU_OPS = {
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "MEAN",
    "QUANTIZE",
    "RESHAPE",
    "SOFTMAX",
}


def interpreter(file: str, *, delegates: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (
        OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    it = Interpreter(
        model_path=str(MODELS / file), num_threads=1, experimental_op_resolver_type=resolver
    )
    it.allocate_tensors()
    return it


def fer_inputs(lfw_subset: np.ndarray) -> np.ndarray:
    """fer's preprocessing of the 100 lfw face crops: uint8 gray, 64x64 bilinear, [-1, 1]."""
    gray = np.clip(np.rint(lfw_subset[:100] * 255.0), 0, 255).astype(np.uint8)
    resized = np.stack([cv2.resize(face, (64, 64)) for face in gray])
    return ((resized.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None, :, :, None]


def top1(it, inputs: np.ndarray) -> np.ndarray:
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    labels = []
    for x in inputs:
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.rint(x / scale) + zero, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], x)
        it.invoke()
        labels.append(int(np.argmax(it.get_tensor(out["index"])[0])))
    return np.array(labels)


def test_int8_model_is_edgetpu_shaped():
    it = interpreter("emotion_int8.tflite", delegates=False)
    ops = {op["op_name"] for op in it._get_ops_details()}
    assert ops <= EDGETPU_OPS, ops - EDGETPU_OPS
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"} <= ops
    for detail in it.get_tensor_details():
        assert detail["dtype"] != np.float32, f"float tensor {detail['name']}"
        assert -1 not in list(detail["shape_signature"]), f"dynamic shape {detail['name']}"
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and list(inp["shape"]) == [1, 64, 64, 1]
    assert out["dtype"] == np.int8 and list(out["shape"]) == [1, 7]


def test_int8_agrees_with_fer_quantized_on_lfw_faces(lfw_subset):
    inputs = fer_inputs(lfw_subset)
    int8 = top1(interpreter("emotion_int8.tflite"), inputs)
    reference = top1(interpreter("fer_emotion_quantized.tflite"), inputs)
    agree = int((int8 == reference).sum())
    assert agree >= 95, f"top-1 agreement {agree}/100"
    # A real classifier on real faces: more than one class, not a constant answer.
    assert len(set(reference.tolist())) >= 4


@pytest.mark.parametrize("photo", ["astronaut.jpg", "grace_hopper.jpg"])
def test_int8_matches_fer_on_sample_photo_faces(photo):
    """On the bundled sample photos' faces both models give the same emotion."""
    from zeke import __file__ as zeke_init

    samples = Path(zeke_init).parent / "data" / "samples"
    gray = cv2.imread(str(samples / photo), cv2.IMREAD_GRAYSCALE)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(80, 80))
    assert len(faces) >= 1
    x, y, w, h = max(faces, key=lambda b: b[2] * b[3])
    crop = gray[max(0, y - 10) : y + h + 10, max(0, x - 10) : x + w + 10]
    x_in = ((cv2.resize(crop, (64, 64)).astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]
    inputs = x_in[None]
    assert (
        top1(interpreter("emotion_int8.tflite"), inputs)[0]
        == top1(interpreter("fer_emotion_quantized.tflite"), inputs)[0]
    )
