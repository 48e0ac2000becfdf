"""The real thing: build qemu-amd64 with mmdebstrap, boot it in qemu until the kiosk's first
event, then build it again from scratch and compare hashes bit for bit.

Needs root and the host packages listed in image_build/README.md (CI installs them and runs
as root); skipped elsewhere, or with ZEKE_IMAGE_TESTS=0. One build is shared by the boot
test and the reproducibility test; the second build shares nothing with the first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = (
    "mmdebstrap",
    "qemu-system-x86_64",
    "qemu-img",
    "zstd",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "dpkg-query",
)
MISSING = [t for t in TOOLS if shutil.which(t) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing host tools: {', '.join(MISSING)}"),
    pytest.mark.skipif(os.environ.get("ZEKE_IMAGE_TESTS") == "0", reason="ZEKE_IMAGE_TESTS=0"),
]


def _image_build(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "image_build", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # The stage display and times end up in the test log (pytest -s or on failure).
    sys.stderr.write(proc.stderr[-4000:])
    return proc


def _manifest(out: Path) -> dict:
    return json.loads((out / "qemu-amd64.manifest.json").read_text())


@pytest.fixture(scope="module")
def first_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("image-first")
    proc = _image_build("build", "qemu-amd64", "--out", str(out), timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_build_outputs_and_records(first_build):
    out = first_build
    manifest = _manifest(out)
    assert manifest["status"] == "complete"
    image = out / "qemu-amd64.img.zst"
    digest = (out / "qemu-amd64.img.zst.sha256").read_text().split()[0]
    assert digest == manifest["outputs"]["qemu-amd64.img.zst"]["sha256"]
    packages = manifest["packages"]
    for name in ("systemd", "linux-image-cloud-amd64", "python3.11", "openssh-server"):
        assert name in packages["debian"], name
    for name in ("zeke", "numpy", "ai-edge-litert", "opencv-python-headless"):
        assert name in packages["python"], name
    sbom = json.loads((out / "qemu-amd64.sbom.cdx.json").read_text())
    components = {(c["name"], c["version"]) for c in sbom["components"]}
    assert ("numpy", packages["python"]["numpy"]) in components
    assert ("ai-edge-litert", packages["python"]["ai-edge-litert"]) in components
    assert ("zeke", packages["python"]["zeke"]) in components
    assert ("bash", packages["debian"]["bash"]) in components
    assert len(sbom["components"]) == len(packages["debian"]) + len(packages["python"])
    assert manifest["inputs"]["archive"]["pinned"] is False
    assert "snapshot.debian.org" in manifest["inputs"]["archive"]["note"]
    assert image.stat().st_size < manifest["outputs"]["raw image"]["size"]
    sys.stderr.write(f"\nstage seconds: {manifest['stage_seconds']}\n")


def test_image_boots_to_the_kiosks_first_event(first_build):
    image = first_build / "qemu-amd64.img.zst"
    proc = _image_build("boot-test", str(image), "--json", "--timeout", "1500", timeout=1800)
    console = first_build / "qemu-amd64.console.log"
    tail = console.read_text(errors="replace")[-3000:] if console.exists() else ""
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}\n--- console ---\n{tail}"
    result = json.loads(proc.stdout)
    assert result["system_state"] == "running"
    assert result["powered_off"] is True
    event = result["first_event"]
    assert event["emotion"] in event["emotions"]
    assert len(event["box"]) == 4 and 0.0 < event["score"] <= 1.0
    text = console.read_text(errors="replace")
    assert "zeke-firstboot: root partition grown" in text
    assert "zeke-firstboot: ssh stays off" in text
    assert "zeke-firstboot: done" in text
    assert "zeke-boot-report: kiosk active" in text
    # The kiosk tells systemd what it watches: first boot's setup chose the demo clip.
    status = next(x for x in text.splitlines() if "zeke-boot-report: kiosk status" in x)
    assert "watching" in status and "demo" in status, status
    sys.stderr.write(f"\nboot ({result['accel']}): {result['seconds']}\n")


def test_second_build_is_bit_identical(first_build, tmp_path):
    second = tmp_path / "second"
    proc = _image_build("build", "qemu-amd64", "--out", str(second), timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = _manifest(first_build), _manifest(second)
    for key in ("profile", "lock", "wheel", "source_date_epoch"):
        assert one["inputs"][key] == two["inputs"][key], (
            f"input {key} changed between the two builds: the checkout was modified (or "
            "committed) while the test ran, so their outputs cannot be compared"
        )
    assert one["packages"] == two["packages"], "the Debian mirror moved between the builds"
    for key in (
        "rootfs.tar",
        "raw image",
        "qemu-amd64.img.zst",
        "qemu-amd64.vmlinuz",
        "qemu-amd64.initrd.img",
    ):
        assert one["outputs"][key]["sha256"] == two["outputs"][key]["sha256"], key
    for name in ("qemu-amd64.sbom.cdx.json", "qemu-amd64.img.zst"):
        assert (first_build / name).read_bytes() == (second / name).read_bytes(), name
    sys.stderr.write(
        "\nsha256 rootfs.tar {}\nsha256 raw image {}\nsha256 img.zst {}\n".format(
            one["outputs"]["rootfs.tar"]["sha256"],
            one["outputs"]["raw image"]["sha256"],
            one["outputs"]["qemu-amd64.img.zst"]["sha256"],
        )
    )
    shutil.rmtree(second)
