"""Plans: vendor profiles render exactly as checked in; layouts and commands are what they say."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from image_build.plan import resolve, stable_uuid
from image_build.profile import load_profile
from image_build.stages.bootstrap import mmdebstrap_command
from image_build.stages.disk import sfdisk_script
from image_build.stages.filesystem import root_size_mib

EXPECTATIONS = Path(__file__).resolve().parents[2] / "image_build" / "expectations"
VENDOR_PROFILES = ["raspberrypi-arm64", "coral-devboard", "jetson-orin-jp6"]
REGENERATE = (
    "if the change is intended, regenerate with `python -m image_build plan {name}{flag} --json "
    "> image_build/expectations/{name}{suffix}.plan.json` and review the diff"
)


@pytest.mark.parametrize("name", VENDOR_PROFILES)
@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_vendor_plan_matches_the_checked_in_expectation(name, offline):
    suffix = ".offline" if offline else ""
    expected = json.loads((EXPECTATIONS / f"{name}{suffix}.plan.json").read_text())
    actual = json.loads(resolve(load_profile(name), offline=offline).to_json())
    hint = REGENERATE.format(name=name, flag=" --offline" if offline else "", suffix=suffix)
    for key in expected:
        assert actual[key] == expected[key], f"plan.{key} of {name} changed; {hint}"
    assert actual.keys() == expected.keys(), hint


@pytest.mark.parametrize("name", VENDOR_PROFILES)
def test_offline_leaves_out_exactly_the_vendor_packages(name):
    profile = load_profile(name)
    online, offline = resolve(profile), resolve(profile, offline=True)
    vendor_packages = sorted(p for s in profile.vendor_sources for p in s.packages)
    assert vendor_packages, f"{name} has vendor packages"
    assert offline.left_out == {
        "sources": sorted(s.name for s in profile.vendor_sources),
        "packages": vendor_packages,
    }
    assert set(vendor_packages) <= set(online.packages)
    assert not set(vendor_packages) & set(offline.packages)
    assert set(online.packages) - set(offline.packages) == set(vendor_packages)
    assert not any(s["vendor"] for s in offline.apt_sources)
    assert online.left_out == {"sources": [], "packages": []}
    assert any(step.name == "offline" for step in offline.steps)


def test_identifiers_are_fixed_per_profile_and_differ_between_profiles():
    amd, arm = resolve(load_profile("qemu-amd64")), resolve(load_profile("qemu-arm64"))
    again = resolve(load_profile("qemu-amd64"))
    assert amd.to_json() == again.to_json()
    assert amd.root.partuuid == stable_uuid("qemu-amd64", "root/partuuid")
    assert amd.root.partuuid != arm.root.partuuid
    assert amd.layout["ext4_hash_seed"] != arm.layout["ext4_hash_seed"]
    assert f"root=PARTUUID={amd.root.partuuid}" in amd.boot["cmdline"].split()
    assert "console=ttyS0,115200" in amd.boot["cmdline"]
    assert "console=ttyAMA0,115200" in arm.boot["cmdline"]
    boot = amd.partitions[0]
    assert boot.filesystem == "vfat" and len(boot.fs_uuid) == 9 and boot.fs_uuid[4] == "-"


def test_mbr_partuuids_follow_the_disk_id():
    plan = resolve(load_profile("raspberrypi-arm64"))
    disk_id = plan.layout["disk_id"]
    assert len(disk_id) == 8
    assert [p.partuuid for p in plan.partitions] == [f"{disk_id}-01", f"{disk_id}-02"]
    assert f"ROOTPART=PARTUUID={disk_id}-02" in plan.boot["files"]["/etc/default/raspi-firmware"]


def test_boot_files_carry_the_root_partition_for_every_vendor_boot():
    for name, path in [
        ("coral-devboard", "/boot/boot.txt"),
        ("jetson-orin-jp6", "/boot/extlinux/extlinux.conf"),
    ]:
        plan = resolve(load_profile(name))
        assert f"root=PARTUUID={plan.root.partuuid}" in plan.boot["files"][path]


def test_mmdebstrap_command(tmp_path):
    plan = resolve(load_profile("qemu-amd64"))
    cmd = mmdebstrap_command(SimpleNamespace(plan=plan, rootfs=tmp_path / "rootfs"))
    assert cmd[:3] == ["mmdebstrap", "--mode=root", "--format=directory"]
    include = next(a for a in cmd if a.startswith("--include="))
    assert include.removeprefix("--include=").split(",") == plan.packages
    assert any("dpkg-divert" in a and "update-initramfs" in a for a in cmd)
    suite = cmd.index("bookworm")
    assert cmd[suite + 1] == str(tmp_path / "rootfs")
    assert cmd[suite + 2 :] == [s["line"] for s in plan.apt_sources]
    assert not any(a.startswith("--keyring") for a in cmd)


def test_mmdebstrap_command_uses_vendor_keyrings_only_online(tmp_path):
    profile = load_profile("coral-devboard")
    online = mmdebstrap_command(SimpleNamespace(plan=resolve(profile), rootfs=tmp_path))
    offline = mmdebstrap_command(
        SimpleNamespace(plan=resolve(profile, offline=True), rootfs=tmp_path)
    )
    assert any(a.endswith("keyrings/coral-archive-keyring.gpg") for a in online)
    assert any("packages.cloud.google.com" in a for a in online)
    assert not any("packages.cloud.google.com" in a or a.startswith("--keyring") for a in offline)
    assert "libedgetpu1-std" in next(a for a in online if a.startswith("--include="))
    assert "libedgetpu1-std" not in next(a for a in offline if a.startswith("--include="))
    jetson = mmdebstrap_command(
        SimpleNamespace(
            plan=resolve(load_profile("jetson-orin-jp6"), offline=True), rootfs=tmp_path
        )
    )
    assert "--keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg" in jetson


def test_root_size_leaves_headroom_and_is_aligned():
    for tar_mib in (10, 700, 701, 2000):
        size = root_size_mib(tar_mib << 20)
        assert size % 64 == 0
        assert size >= tar_mib * 1.25 + 256
    assert root_size_mib(700 << 20) <= root_size_mib(701 << 20)


def _sfdisk_json(image: Path) -> dict:
    out = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)["partitiontable"]


@pytest.mark.skipif(shutil.which("sfdisk") is None, reason="needs sfdisk (apt: fdisk)")
@pytest.mark.parametrize("name", ["qemu-amd64", "raspberrypi-arm64"])
def test_sfdisk_writes_the_planned_table_into_a_plain_file(tmp_path, name):
    plan = resolve(load_profile(name))
    sizes = {p.name: p.size_mib or 100 for p in plan.partitions}
    script, total_mib = sfdisk_script(SimpleNamespace(plan=plan), sizes)
    image = tmp_path / "disk.img"
    with image.open("wb") as fh:
        fh.truncate(total_mib << 20)
    for _ in range(2):
        subprocess.run(
            ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe=never", str(image)],
            input=script,
            text=True,
            capture_output=True,
            check=True,
        )
        first = image.read_bytes()
    table = _sfdisk_json(image)
    assert table["label"] == plan.layout["table"]
    offset = plan.layout["first_offset_mib"] << 11
    for part, planned in zip(table["partitions"], plan.partitions, strict=True):
        assert part["start"] == offset
        assert part["size"] == sizes[planned.name] << 11
        offset += part["size"]
        if plan.layout["table"] == "gpt":
            assert part["uuid"].lower() == planned.partuuid
            assert part["type"].upper() == planned.type_code
            assert part["name"] == planned.name
        else:
            assert part["type"] == planned.type_code
    if plan.layout["table"] == "gpt":
        assert table["id"].lower() == plan.layout["disk_id"]
    else:
        assert table["id"] == f"0x{plan.layout['disk_id']}"
    # Same script, same bytes: the table is reproducible.
    subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe=never", str(image)],
        input=script,
        text=True,
        capture_output=True,
        check=True,
    )
    assert image.read_bytes() == first
    os.unlink(image)


def test_plan_cli_json_and_text(run_cli):
    proc = run_cli("plan", "coral-devboard", "--offline", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads(resolve(load_profile("coral-devboard"), offline=True).to_json())
    proc = run_cli("plan", "jetson-orin-jp6", "--offline")
    assert proc.returncode == 0, proc.stderr
    assert "left out (--offline)" in proc.stdout and "nvidia-l4t-kernel" in proc.stdout
    assert "ubuntu jammy arm64" in proc.stdout
