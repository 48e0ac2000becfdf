"""``zeke detect`` as a user runs it: the JSON contract, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from zeke.resources import sample_photos

REPO = Path(__file__).resolve().parents[2]
FACE_KEYS = {"box", "score", "keypoints", "emotion", "emotion_score", "emotions"}


def test_default_runs_on_the_bundled_samples(zeke_cli):
    proc = zeke_cli("detect", "--json")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(d["source"]).name for d in docs] == [p.name for p in sample_photos()]
    by_name = {Path(d["source"]).name: d for d in docs}
    astro = by_name["astronaut.jpg"]
    assert len(astro["faces"]) == 1 and astro["faces"][0]["emotion"] == "happy"
    assert len(by_name["grace_hopper.jpg"]["faces"]) == 1


def test_json_contract(zeke_cli, tmp_path, astronaut_bgr):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    proc = zeke_cli("detect", str(photo), "--json", "--detector", "full", "--min-score", "0.6")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    doc = json.loads(line)
    assert set(doc) == {"source", "width", "height", "detector", "backend", "faces", "timings_ms"}
    assert (doc["source"], doc["width"], doc["height"]) == (str(photo), 512, 512)
    assert doc["detector"] == "full" and doc["backend"] == "cpu"
    assert set(doc["timings_ms"]) == {"decode", "detect", "classify", "total"}
    assert doc["timings_ms"]["total"] >= doc["timings_ms"]["detect"] > 0
    (face,) = doc["faces"]
    assert set(face) == FACE_KEYS
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert set(face["keypoints"]) == {
        "right_eye",
        "left_eye",
        "nose_tip",
        "mouth",
        "right_ear",
        "left_ear",
    }
    assert list(face["emotions"]) == [
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    ]
    assert face["emotion"] == "happy" and face["emotion_score"] == max(face["emotions"].values())


def test_human_output_is_a_table(zeke_cli):
    proc = zeke_cli("detect", str(sample_photos()[0]), env={"COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s)" in proc.stdout and "happy" in proc.stdout
    assert "emotion" in proc.stdout and "score" in proc.stdout


def _bad_inputs(tmp: Path, photo: np.ndarray) -> dict[str, tuple[Path, str]]:
    ok_jpeg = cv2.imencode(".jpg", photo)[1].tobytes()
    cases = {}
    cases["missing"] = (tmp / "nope.jpg", "no such file")
    (tmp / "adir").mkdir()
    cases["directory"] = (tmp / "adir", "is a directory")
    (tmp / "empty.jpg").write_bytes(b"")
    cases["empty"] = (tmp / "empty.jpg", "empty")
    (tmp / "text.jpg").write_text("hello, this is not a picture\n")
    cases["text"] = (tmp / "text.jpg", "not an image")
    (tmp / "truncated.jpg").write_bytes(ok_jpeg[: len(ok_jpeg) // 2])
    cases["truncated"] = (tmp / "truncated.jpg", "truncated")
    cv2.imwrite(str(tmp / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cases["1x1"] = (tmp / "tiny.png", "too small")
    bomb = np.zeros((8200, 8200), np.uint8)  # 67 MP of zeros: a few hundred KB as PNG
    cv2.imwrite(str(tmp / "bomb.png"), bomb, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cases["bomb"] = (tmp / "bomb.png", "MP limit")
    return cases


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, astronaut_bgr):
    return _bad_inputs(tmp_path_factory.mktemp("bad"), astronaut_bgr)


@pytest.mark.parametrize(
    "case", ["missing", "directory", "empty", "text", "truncated", "1x1", "bomb"]
)
def test_bad_input_is_one_clear_line(zeke_cli, bad_inputs, case):
    path, message = bad_inputs[case]
    proc = zeke_cli("detect", str(path))
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert str(path) in errors[0]


def test_bad_inputs_do_not_stop_good_ones(zeke_cli, bad_inputs):
    good = str(sample_photos()[0])
    paths = [str(p) for p, _ in bad_inputs.values()]
    proc = zeke_cli("detect", "--json", paths[0], good, *paths[1:])
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["source"] for d in docs] == [paths[0], good, *paths[1:]]
    assert "faces" in docs[1] and len(docs[1]["faces"]) == 1
    assert all(set(d) == {"source", "error"} for i, d in enumerate(docs) if i != 1)


def test_min_score_out_of_range(zeke_cli):
    proc = zeke_cli("detect", "--min-score", "2")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--min-score must be between 0 and 1" in proc.stderr


def test_tampered_model_is_refused(zeke_cli, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    model = models / "blazeface_short.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    proc = zeke_cli("detect", "--models-dir", str(models))
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    line = next(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert str(model) in line and "failed its sha256 check" in line
    assert "expected 3bc182eb" in line and "got " in line


def test_unknown_detector_and_backend(zeke_cli):
    for args, word in (
        (["--detector", "tiny"], "unknown detector"),
        (["--backend", "gpu"], "unknown backend"),
    ):
        proc = zeke_cli("detect", *args)
        assert proc.returncode == 2 and word in proc.stderr and "Traceback" not in proc.stderr
