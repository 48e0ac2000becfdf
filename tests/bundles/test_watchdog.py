"""The crash watchdog: new models that crash the pipeline soon after a switch roll back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from zeke.bundles.store import describe_state
from zeke.bundles.watchdog import report_exit

from .conftest import run_zeke

# The pipeline as a child process. Running on bundle v2 it aborts after loading its models:
# the stand-in for a model or delegate that crashes the interpreter in the field.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import cv2
    from zeke.resources import SAMPLES_DIR
    from zeke.vision.pipeline import FacePipeline

    pipeline = FacePipeline.create(detector="short", backend="cpu")
    faces = pipeline.process(cv2.imread(str(SAMPLES_DIR / "astronaut.jpg"))).faces
    version = Path(pipeline.backend_info["models_dir"]).name
    print(f"running on {version}: {len(faces)} face(s)", flush=True)
    if version == os.environ.get("CRASH_ON"):
        os.abort()
    end = time.monotonic() + float(os.environ.get("RUN_FOR", "0"))
    while time.monotonic() < end:
        time.sleep(0.1)
    """
)


@pytest.fixture
def child(tmp_path):
    path = tmp_path / "pipeline.py"
    path.write_text(CHILD)
    return path


def _restart_probation(store) -> float:
    state = store.read_state()
    state.probation.since = time.time()
    store.write_state(state)
    return state.probation.since


def test_two_crashes_on_probation_roll_back(store, trusted):
    since = store.read_state().probation.since
    first = report_exit(-signal.SIGSEGV, store=store, trusted=trusted, now=since + 10)
    assert first.crashed and first.crashes == 1 and first.rolled_back is None
    clean = report_exit(0, store=store, trusted=trusted, now=since + 15)
    assert not clean.crashed and clean.rolled_back is None
    stopped = report_exit(-signal.SIGTERM, store=store, trusted=trusted, now=since + 16)
    assert not stopped.crashed  # a service stop is not a crash
    second = report_exit(-signal.SIGABRT, store=store, trusted=trusted, now=since + 20)
    assert second.rolled_back is not None
    assert (second.rolled_back.from_version, second.rolled_back.to_version) == ("v2", "v1")
    assert second.rolled_back.automatic
    state = store.read_state()
    assert store.active_version() == "v1" and state.probation is None
    assert state.failed[-1].kind == "crash" and "SIGABRT" in state.failed[-1].reason
    assert "rolled back automatically from v2 to v1" in describe_state(state)


def test_crashes_after_the_window_do_not_roll_back(store, trusted):
    since = store.read_state().probation.since
    for offset in (400, 410, 420):
        outcome = report_exit(1, store=store, trusted=trusted, window=300, now=since + offset)
        assert outcome.rolled_back is None and not outcome.on_probation
    assert store.active_version() == "v2" and store.read_state().probation is None


def test_supervisor_rolls_back_a_crashing_bundle_and_restarts(store, env, child):
    _restart_probation(store)
    done = run_zeke(
        "models", "supervise", "--max-crashes", "2", "--", sys.executable, str(child),
        env={**env, "CRASH_ON": "v2"}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = [line for line in done.stdout.splitlines() if line.startswith("running on")]
    assert runs == ["running on v2: 1 face(s)"] * 2 + ["running on v1: 1 face(s)"]
    assert "rolled back automatically from v2 to v1" in done.stderr
    assert "Traceback" not in done.stderr

    listing = json.loads(run_zeke("models", "list", "--json", env=env).stdout)
    assert listing["active"] == "v1"
    assert listing["rollbacks"][-1]["automatic"] is True
    assert listing["failed"][-1]["kind"] == "crash" and listing["failed"][-1]["version"] == "v2"
    assert listing["notice"].startswith("models rolled back automatically from v2 to v1")
    human = run_zeke("models", "list", env=env).stdout
    assert "rolled back automatically" in human


def test_supervisor_confirms_a_bundle_that_runs_through_the_window(store, env, child):
    _restart_probation(store)
    done = run_zeke(
        "models", "supervise", "--window", "1", "--", sys.executable, str(child),
        env={**env, "RUN_FOR": "3"}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read_state().probation is None
    assert store.active_version() == "v2"


def test_supervisor_restarts_the_pipeline_when_the_models_switch(store, env, child, trusted):
    process = subprocess.Popen(
        [sys.executable, "-m", "zeke", "models", "supervise", "--", sys.executable, str(child)],
        env={**env, "RUN_FOR": "120"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "running on v2: 1 face(s)"
        from zeke.bundles.rollback import rollback

        rollback(store=store, trusted=trusted)  # another process switches the models
        assert process.stdout.readline().strip() == "running on v1: 1 face(s)"
        process.send_signal(signal.SIGTERM)  # the service manager stops the unit
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    stderr = process.stderr.read()
    assert "active models changed to v1; restarting" in stderr
    assert store.read_state().rollbacks[-1].automatic is False  # a stop is not a crash


def test_systemd_exec_stop_post_hook_rolls_back(store, env):
    """``zeke models watchdog`` as ExecStopPost: systemd's variables say how the unit ended."""
    _restart_probation(store)
    stop = {**env, "SERVICE_RESULT": "signal", "EXIT_CODE": "killed", "EXIT_STATUS": "TERM"}
    assert run_zeke("models", "watchdog", env=stop).returncode == 0
    assert store.read_state().probation.crashes == 0  # systemctl stop is not a crash
    crash = {**env, "SERVICE_RESULT": "core-dump", "EXIT_CODE": "dumped", "EXIT_STATUS": "SEGV"}
    first = run_zeke("models", "watchdog", env=crash)
    assert first.returncode == 0 and "crash 1 of 2" in first.stderr
    second = run_zeke("models", "watchdog", env=crash)
    assert "rolled back automatically from v2 to v1" in second.stderr
    assert store.active_version() == "v1"
    assert run_zeke("models", "watchdog", env=env).returncode == 2  # no status given
    # zeke doctor says so, with what to do about it.
    doctor = json.loads(run_zeke("doctor", "--json", env=env).stdout)
    models = next(check for check in doctor["checks"] if check["id"] == "models")
    assert models["status"] == "warn", models
    assert "rolled back automatically from v2 to v1" in models["detail"]
    assert "zeke models install" in models["fix"]
