"""Round trip with the real CLI: keygen, pack, verify, install, the pipeline, rollback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from zeke.resources import SAMPLES_DIR

from .conftest import MODELS, REPO, run_zeke


def _faces_with(env: dict[str, str]) -> tuple[str, list[dict]]:
    """Run the pipeline exactly as zeke resolves its models (no explicit directory)."""
    code = (
        "import json, cv2\n"
        "from zeke.vision.pipeline import FacePipeline\n"
        "p = FacePipeline.create(detector='short', backend='cpu')\n"
        f"r = p.process(cv2.imread({str(SAMPLES_DIR / 'astronaut.jpg')!r}))\n"
        "print(json.dumps({'dir': p.backend_info['models_dir'],"
        " 'faces': [f.to_dict() for f in r.faces]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["dir"], result["faces"]


def test_round_trip_keygen_pack_verify_install_pipeline_rollback(tmp_path, env):
    store = Path(env["ZEKE_MODEL_STORE"])
    trusted = tmp_path / "trusted"
    env = {**env, "ZEKE_TRUSTED_KEYS": str(trusted)}

    done = run_zeke(
        "models", "keygen", "--out", str(tmp_path / "keys"), "--name", "vendor", env=env
    )
    assert done.returncode == 0, done.stderr
    key, pub = tmp_path / "keys" / "vendor.key", tmp_path / "keys" / "vendor.pub"
    trusted.mkdir()
    shutil.copyfile(pub, trusted / "vendor.pub")

    # v1: the full vendored models directory; v2: the same models, a new version.
    for version in ("2025.1", "2025.2"):
        out = tmp_path / f"{version}.bundle"
        args = ("models", "pack", str(MODELS), "--key", str(key), "--version", version)
        done = run_zeke(*args, "--out", str(out), "--json", env=env)
        assert done.returncode == 0, done.stderr
        packed = json.loads(done.stdout)
        assert packed["version"] == version and packed["bytes"] == out.stat().st_size
        done = run_zeke("models", "verify", str(out), "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["key_id"] == packed["key_id"]

    # Before any install the pipeline uses the factory/checkout models, not the store.
    models_dir, _ = _faces_with(env)
    assert not models_dir.startswith(str(store))

    done = run_zeke("models", "install", str(tmp_path / "2025.1.bundle"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)
    assert first["activated"] and first["previous"] is None
    assert first["selftest"]["passed"] == first["selftest"]["checks"] >= 6

    done = run_zeke("models", "install", str(tmp_path / "2025.2.bundle"), "--json", env=env)
    second = json.loads(done.stdout)
    assert second["previous"] == "2025.1"

    # The pipeline now resolves the active bundle through the store's current link.
    models_dir, faces = _faces_with(env)
    assert Path(models_dir).resolve() == (store / "versions" / "2025.2").resolve()
    assert len(faces) == 1 and faces[0]["emotion"] == "happy"

    done = run_zeke("models", "verify", env=env)
    assert done.returncode == 0 and "2025.2" in done.stdout

    done = run_zeke("models", "rollback", "--json", env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["from_version"], record["to_version"], record["automatic"]) == (
        "2025.2",
        "2025.1",
        False,
    )
    models_dir, faces = _faces_with(env)
    assert Path(models_dir).resolve() == (store / "versions" / "2025.1").resolve()
    assert len(faces) == 1 and faces[0]["emotion"] == "happy"

    listing = json.loads(run_zeke("models", "list", "--json", env=env).stdout)
    assert listing["active"] == "2025.1"
    states = {b["version"]: (b["active"], b["status"], b["verified"]) for b in listing["bundles"]}
    assert states == {"2025.1": (True, "ready", True), "2025.2": (False, "rolled-back", True)}
    assert listing["rollbacks"][-1]["to_version"] == "2025.1"


def test_watch_runs_on_the_active_bundle(store, env):
    """``zeke watch`` loads the store's active bundle: events flow, and damage is caught."""
    args = ("watch", "--demo", "--json", "--frames", "150", "--no-pace", "--no-events-socket")
    done = run_zeke(*args, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert any(e["emotion"] == "happy" for e in events)

    # Damage the active bundle on disk: watch must refuse it, naming the store's file.
    model = store.active_dir() / "emotion_int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    done = run_zeke(*args, env=env, timeout=300)
    assert done.returncode != 0
    assert "sha256" in done.stderr and str(store.root) in done.stderr
    assert "Traceback" not in done.stderr


def test_factory_bundle_script_is_reproducible_and_installs(tmp_path, env, keypair, trusted):
    script = REPO / "scripts" / "make_factory_bundle.py"
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.bundle"
        done = subprocess.run(
            [sys.executable, str(script), "--key", str(keypair.private_path), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    done = run_zeke("models", "install", str(tmp_path / "a.bundle"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["name"] == "zeke-factory" and result["version"].startswith("factory-")
    assert result["disk_bytes"] >= sum(
        (MODELS / p).stat().st_size for p in os.listdir(MODELS) if p.endswith(".tflite")
    )
    assert result["selftest"]["passed"] == result["selftest"]["checks"] == 6
