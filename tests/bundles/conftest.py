"""Shared fixtures: keys, real models directories, bundles, stores, and a tree snapshot."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from zeke.bundles.install import install
from zeke.bundles.keys import TrustedKeys, generate_keypair
from zeke.bundles.pack import pack_directory
from zeke.bundles.store import Store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
SLIM_MODELS = ("blazeface_short", "emotion_int8")


def write_models_dir(
    target: Path, names: tuple[str, ...] | None = None, edit: Callable[[dict], None] | None = None
) -> Path:
    """A real models directory: the vendored files of ``names`` and a manifest.toml for them."""
    document = tomllib.loads((MODELS / "manifest.toml").read_text())
    if names is not None:
        document["models"] = {n: document["models"][n] for n in names}
    if edit is not None:
        edit(document)
    target.mkdir(parents=True)
    for entry in document["models"].values():
        destination = target / entry["file"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODELS / entry["file"], destination)
    (target / "manifest.toml").write_text(tomli_w.dumps(document))
    return target


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def keypair(session_dir):
    """The publisher's key pair; its public half is the only trusted key."""
    return generate_keypair(session_dir / "keys", "publisher")


@pytest.fixture(scope="session")
def trusted_dir(session_dir, keypair) -> Path:
    directory = session_dir / "trusted"
    directory.mkdir()
    shutil.copyfile(keypair.public_path, directory / keypair.public_path.name)
    return directory


@pytest.fixture(scope="session")
def trusted(trusted_dir) -> TrustedKeys:
    return TrustedKeys.load(trusted_dir)


@pytest.fixture(scope="session")
def slim_models(session_dir) -> Path:
    """The two models the default pipeline needs (BlazeFace short, emotion int8): ~330 KB."""
    return write_models_dir(session_dir / "slim-models", SLIM_MODELS)


@pytest.fixture(scope="session")
def make_bundle(session_dir, keypair) -> Callable[..., Path]:
    """Pack a models directory (default: the slim one) as ``version`` into a bundle file."""
    made: dict[tuple, Path] = {}

    def make(version: str, source: Path | None = None, key: Path | None = None, **options) -> Path:
        source = source or session_dir / "slim-models"
        cache_key = (version, str(source), str(key), tuple(sorted(options.items())))
        if cache_key not in made:
            out = session_dir / "made" / f"{len(made)}-{version}.bundle"
            pack_directory(source, key or keypair.private_path, out, version=version, **options)
            made[cache_key] = out
        return made[cache_key]

    return make


@pytest.fixture(scope="session")
def base_store(session_dir, slim_models, make_bundle, trusted) -> Path:
    """A store with v1 then v2 installed (active v2, previous v1), made once per session."""
    store = Store(session_dir / "base-store")
    for version in ("v1", "v2"):
        install(make_bundle(version), store=store, trusted=trusted)
    return store.root


@pytest.fixture
def env(monkeypatch, tmp_path, trusted_dir) -> dict[str, str]:
    """Point zeke at a fresh store in tmp_path and the test's trusted keys."""
    store = tmp_path / "store"
    monkeypatch.setenv("ZEKE_MODEL_STORE", str(store))
    monkeypatch.setenv("ZEKE_TRUSTED_KEYS", str(trusted_dir))
    monkeypatch.delenv("ZEKE_MODELS_DIR", raising=False)
    monkeypatch.delenv("ZEKE_BUNDLE_CRASH_AT", raising=False)
    return {**os.environ}


@pytest.fixture
def store(env, base_store) -> Store:
    """A private copy of the base store (active v2, previous v1) at $ZEKE_MODEL_STORE."""
    root = Path(env["ZEKE_MODEL_STORE"])
    shutil.copytree(base_store, root, symlinks=True)
    return Store(root)


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything on disk under ``root``: files with their sha256 and mode, links, dirs."""
    seen: dict[str, tuple] = {}
    if not root.exists():
        return seen
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            seen[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[rel] = ("dir", path.stat().st_mode)
        else:
            seen[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
    return seen


def run_zeke(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``zeke`` entry point in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "zeke", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
