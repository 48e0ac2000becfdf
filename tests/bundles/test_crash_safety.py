"""kill -9 at every install and rollback step: the active bundle still verifies and loads.

``$ZEKE_BUNDLE_CRASH_AT=<step>`` makes the real ``zeke models install`` SIGKILL itself at that
step. Before the ``current`` link is swapped the old bundle must be active, from then on the
new one; either way it verifies, the pipeline runs on it, and the next install cleans up.
"""

from __future__ import annotations

import os
import signal

import cv2
import pytest

from zeke.bundles.install import INSTALL_STEPS, install
from zeke.bundles.store import Store
from zeke.bundles.verify import verify_installed
from zeke.resources import SAMPLES_DIR
from zeke.vision.models import models_dir
from zeke.vision.pipeline import FacePipeline

from .conftest import run_zeke

SWITCHED_FROM = INSTALL_STEPS.index("switch")
LOCAL_STEPS = [s for s in INSTALL_STEPS if s != "download"]  # download: see test_download


def assert_active_works(store: Store, trusted, version: str) -> None:
    assert store.active_version() == version
    assert verify_installed(store.active_dir(), trusted).manifest.version == version
    resolved = models_dir()  # what every zeke process would load now
    assert resolved.resolve() == store.version_dir(version).resolve()
    pipeline = FacePipeline.create(detector="short", backend="cpu")
    faces = pipeline.process(cv2.imread(str(SAMPLES_DIR / "astronaut.jpg"))).faces
    assert len(faces) == 1 and faces[0].emotion == "happy"


def assert_clean(store: Store) -> None:
    names = os.listdir(store.root)
    assert not [n for n in names if n.startswith(".staging-") or ".tmp-" in n]
    state = store.read_state()
    assert state.pending is None
    assert sorted(os.listdir(store.versions)) == sorted(state.bundles)
    assert state.active == store.active_version()


@pytest.mark.parametrize("step", LOCAL_STEPS)
def test_kill_during_install(step, store, trusted, env, make_bundle):
    bundle = make_bundle("v3")
    crash_env = {**env, "ZEKE_BUNDLE_CRASH_AT": step}
    done = run_zeke("models", "install", str(bundle), "--keep", "2", env=crash_env)
    assert done.returncode == -signal.SIGKILL, (step, done.returncode, done.stderr)

    expected = "v3" if INSTALL_STEPS.index(step) >= SWITCHED_FROM else "v2"
    assert_active_works(store, trusted, expected)

    # The next install finishes the job (or is a no-op) and leaves no debris.
    result = install(bundle, store=store, trusted=trusted, keep=2)
    assert result.version == "v3"
    assert_clean(store)
    assert_active_works(store, trusted, "v3")
    state = store.read_state()
    assert state.previous == "v2"
    assert sorted(state.bundles) == ["v2", "v3"]  # keep=2: v1 went, the survivors verify
    for version in state.bundles:
        verify_installed(store.version_dir(version), trusted)


@pytest.mark.parametrize("step", ["pending", "link", "switch", "state"])
def test_kill_during_rollback(step, store, trusted, env):
    done = run_zeke("models", "rollback", env={**env, "ZEKE_BUNDLE_CRASH_AT": step})
    assert done.returncode == -signal.SIGKILL, (step, done.stderr)
    expected = "v1" if step in ("switch", "state") else "v2"
    assert_active_works(store, trusted, expected)

    # Reconciling finishes (or forgets) the interrupted switch; the journal agrees again.
    listing = run_zeke("models", "list", "--json", env=env)
    assert listing.returncode == 0
    with store.lock():
        state = store.reconcile()
    assert state.active == expected and state.pending is None
    if expected == "v1":
        assert state.rollbacks[-1].to_version == "v1"
        assert state.bundles["v2"].status == "rolled-back"
    assert_clean(store)
