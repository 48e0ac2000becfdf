"""Pack and verify: keys, reproducible bytes, a standard tar inside, strict verification."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

import zeke
from zeke.bundles.archive import archive_size
from zeke.bundles.errors import BundleError
from zeke.bundles.keys import TrustedKeys, generate_keypair, load_private_key
from zeke.bundles.manifest import version_at_least
from zeke.bundles.pack import pack_directory
from zeke.bundles.verify import verify_bundle

from .conftest import MODELS, write_models_dir


def test_keygen_writes_a_secret_key_and_refuses_to_overwrite(tmp_path):
    pair = generate_keypair(tmp_path, "k")
    assert pair.private_path.stat().st_mode & 0o777 == 0o600
    assert len(pair.key_id) == 16
    assert pair.public_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(BundleError, match="already exists"):
        generate_keypair(tmp_path, "k")


def test_pack_is_reproducible_and_verifies(tmp_path, slim_models, keypair, trusted):
    first = pack_directory(slim_models, keypair.private_path, tmp_path / "a.bundle", version="v7")
    second = pack_directory(slim_models, keypair.private_path, tmp_path / "b.bundle", version="v7")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()

    other = generate_keypair(tmp_path / "other", "o")
    third = pack_directory(slim_models, other.private_path, tmp_path / "c.bundle", version="v7")
    assert third.sha256 != first.sha256  # the signature differs, nothing else

    checked = verify_bundle(first.path, trusted)
    assert checked.key_id == keypair.key_id
    assert checked.manifest.version == "v7"
    assert sorted(checked.manifest.models) == ["blazeface_short", "emotion_int8"]
    paths = [f.path for f in checked.manifest.files]
    assert paths == ["blazeface_short.tflite", "emotion_int8.tflite", "manifest.toml"]
    sizes = [len(checked.manifest_bytes), len(checked.signature_bytes)]
    assert first.size == archive_size(sizes + [f.size for f in checked.manifest.files])


def test_bundle_is_a_standard_tar(tmp_path, make_bundle):
    with tarfile.open(make_bundle("v1")) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "bundle.json",
        "bundle.sig",
        "blazeface_short.tflite",
        "emotion_int8.tflite",
        "manifest.toml",
    ]
    assert {(m.mtime, m.uid, m.gid, m.mode, m.type) for m in members} == {
        (0, 0, 0, 0o644, tarfile.REGTYPE)
    }


def test_manifest_carries_models_hashes_and_versions(make_bundle, trusted):
    checked = verify_bundle(make_bundle("v1"), trusted)
    document = json.loads(checked.manifest_bytes)
    assert document["format"] == 1
    assert document["min_zeke_version"] == zeke.__version__
    emotion = document["models"]["emotion_int8"]
    assert emotion["labels"][3] == "happy"
    assert emotion["input_shape"] == [1, 64, 64, 1]
    for entry in document["files"]:
        data = (MODELS / entry["path"]).read_bytes() if entry["path"] != "manifest.toml" else None
        if data is not None:
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_pack_refuses_a_file_that_does_not_match_its_manifest(tmp_path, keypair):
    source = write_models_dir(tmp_path / "m", ("blazeface_short",))
    with open(source / "blazeface_short.tflite", "r+b") as stream:
        stream.seek(1000)
        stream.write(b"\xff")
    with pytest.raises(BundleError, match=r"does not match manifest\.toml"):
        pack_directory(source, keypair.private_path, tmp_path / "x.bundle", version="v1")
    assert not (tmp_path / "x.bundle").exists()


def test_pack_refuses_missing_files_and_bad_keys(tmp_path, keypair, slim_models):
    source = write_models_dir(tmp_path / "m", ("blazeface_short",))
    (source / "blazeface_short.tflite").unlink()
    with pytest.raises(BundleError, match="cannot be read"):
        pack_directory(source, keypair.private_path, tmp_path / "x.bundle")
    with pytest.raises(BundleError, match="not an unencrypted PEM private key"):
        pack_directory(slim_models, keypair.public_path, tmp_path / "x.bundle")
    with pytest.raises(BundleError, match=r"no manifest\.toml"):
        pack_directory(tmp_path, keypair.private_path, tmp_path / "x.bundle")
    with pytest.raises(BundleError, match="version"):
        pack_directory(slim_models, keypair.private_path, tmp_path / "x.bundle", version="../x")


def test_private_key_loader_names_the_problem(tmp_path):
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(BundleError, match="not an unencrypted PEM private key"):
        load_private_key(tmp_path / "junk.key")
    with pytest.raises(BundleError, match="cannot read signing key"):
        load_private_key(tmp_path / "missing.key")


def test_pack_carries_subdirectories_and_notice_files(tmp_path, keypair, trusted):
    """The vendored models/ has source/ files and a NOTICE: both travel in the bundle."""
    result = pack_directory(MODELS, keypair.private_path, tmp_path / "f.bundle", version="f1")
    paths = [f.path for f in result.manifest.files]
    assert "NOTICE" in paths
    assert any("/" in p for p in paths)
    assert verify_bundle(result.path, trusted).manifest.version == "f1"


def test_trusted_keys_skip_unreadable_files(tmp_path, keypair):
    (tmp_path / "broken.pub").write_text("garbage")
    (tmp_path / "good.pub").write_bytes(keypair.public_path.read_bytes())
    keys = TrustedKeys.load(tmp_path)
    assert list(keys.keys) == [keypair.key_id]
    assert any("broken.pub" in p for p in keys.problems)


def test_version_compare():
    assert version_at_least("0.1.0", "0.1.0")
    assert version_at_least("0.10.0", "0.9.9")
    assert not version_at_least("0.1.0", "0.2")
    assert not version_at_least("0.1.0", "99.0")
