"""The store: keep the last N, reinstall, leftovers, state rebuild, rollback refusals, lock."""

from __future__ import annotations

import os

import pytest

from zeke.bundles.errors import BundleError, StoreBusy
from zeke.bundles.install import install
from zeke.bundles.rollback import rollback
from zeke.bundles.store import Store, active_models_dir, describe_state

from .conftest import snapshot


def test_keeps_the_last_n_bundles_never_active_or_previous(store, trusted, make_bundle):
    install(make_bundle("v3"), store=store, trusted=trusted, keep=3)
    assert sorted(os.listdir(store.versions)) == ["v1", "v2", "v3"]
    result = install(make_bundle("v4"), store=store, trusted=trusted, keep=3)
    assert result.removed == ["v1"]
    assert sorted(os.listdir(store.versions)) == ["v2", "v3", "v4"]
    state = store.read_state()
    assert (state.active, state.previous) == ("v4", "v3")
    assert sorted(state.bundles) == ["v2", "v3", "v4"]


def test_installing_the_active_bundle_again_is_a_no_op(store, trusted, make_bundle):
    before = snapshot(store.root)
    result = install(make_bundle("v2"), store=store, trusted=trusted)
    assert not result.activated
    assert snapshot(store.root) == before


def test_same_version_with_other_content_is_refused(tmp_path, store, trusted, make_bundle):
    from .conftest import write_models_dir

    other = write_models_dir(tmp_path / "m", ("blazeface_short", "emotion_int8", "blazeface_full"))
    before = snapshot(store.root)
    with pytest.raises(BundleError, match="already installed with different content"):
        install(make_bundle("v1", source=other), store=store, trusted=trusted)
    assert snapshot(store.root) == before


def test_rolled_back_bundle_can_be_installed_again(store, trusted, make_bundle):
    rollback(store=store, trusted=trusted)
    assert store.read_state().bundles["v2"].status == "rolled-back"
    result = install(make_bundle("v2"), store=store, trusted=trusted)
    assert result.activated and result.previous == "v1"
    state = store.read_state()
    assert state.active == "v2" and state.bundles["v2"].status == "ready"


def test_rollback_refusals_leave_the_store_alone(store, trusted):
    before = snapshot(store.root)
    with pytest.raises(BundleError, match="not installed"):
        rollback(store=store, trusted=trusted, to="v9")
    with pytest.raises(BundleError, match="already the active one"):
        rollback(store=store, trusted=trusted, to="v2")
    # A damaged previous bundle is never switched to.
    victim = store.version_dir("v1") / "blazeface_short.tflite"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    damaged = snapshot(store.root)
    with pytest.raises(BundleError, match=r"cannot roll back to v1: .*sha256.*v2 stays active"):
        rollback(store=store, trusted=trusted)
    assert snapshot(store.root) == damaged
    assert before.keys() == damaged.keys()


def test_rollback_without_previous_or_store(tmp_path, trusted):
    with pytest.raises(BundleError, match="no bundles are installed"):
        rollback(store=Store(tmp_path / "none"), trusted=trusted)


def test_second_rollback_has_no_previous(store, trusted):
    rollback(store=store, trusted=trusted)
    with pytest.raises(BundleError, match="no previous bundle"):
        rollback(store=store, trusted=trusted)


def test_leftovers_of_interrupted_installs_are_removed(store, trusted, make_bundle):
    (store.root / ".staging-v9-abc").mkdir()
    (store.root / ".staging-v9-abc" / "half.tflite").write_bytes(b"x" * 100)
    os.symlink("versions/v1", store.root / ".current.tmp-4242")
    (store.versions / "orphan").mkdir()
    install(make_bundle("v3"), store=store, trusted=trusted)
    names = set(os.listdir(store.root))
    assert not any(n.startswith(".staging-") or ".tmp-" in n for n in names)
    assert sorted(os.listdir(store.versions)) == ["v1", "v2", "v3"]


def test_lost_state_file_is_rebuilt_from_the_directories(store, trusted, make_bundle):
    store.state_path.write_text("{ not json")
    state = store.read_state()
    assert state.active == "v2" and sorted(state.bundles) == ["v1", "v2"]
    install(make_bundle("v3"), store=store, trusted=trusted)
    assert store.read_state().previous == "v2"


def test_active_models_dir_is_the_pinned_version_directory(store):
    assert active_models_dir() == store.version_dir("v2")
    assert (active_models_dir() / "manifest.toml").is_file()


def test_a_busy_store_is_reported_not_waited_for(store, trusted, make_bundle):
    with store.lock(), pytest.raises(StoreBusy, match="busy"):
        install(make_bundle("v3"), store=store, trusted=trusted)


def test_describe_state_only_speaks_after_an_automatic_rollback(store, trusted):
    rollback(store=store, trusted=trusted)
    assert describe_state(store.read_state()) is None  # the operator's own rollback
