"""The boot test's parts that need no qemu: reading the console, the qemu command line,
refusing images it cannot judge; and the shell scripts the image runs at boot."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from image_build.boot import ConsoleWatch, boot_image, load_manifest, qemu_command
from image_build.errors import BootTestError, ImageBuildError
from image_build.plan import resolve
from image_build.profile import load_profile

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = [
    REPO / "systemd" / "zeke-firstboot.sh",
    REPO / "image_build" / "overlay" / "usr" / "lib" / "zeke" / "boot-report",
]


def _manifest(profile: str, units: list[str]) -> dict:
    plan = resolve(load_profile(profile))
    return {
        "status": "complete",
        "profile": profile,
        "architecture": plan.architecture,
        "boot": plan.boot,
        "units_enabled": units,
    }


def test_console_watch_reads_partial_lines_and_times_each_report(tmp_path):
    console = tmp_path / "console.log"
    watch = ConsoleWatch(console)
    watch.poll(0.1)  # no file yet
    console.write_bytes(b"[    0.000000] Linux version 6.1.0\r\nzeke-firstboot: do")
    watch.poll(1.0)
    assert watch.events["kernel"][0] == 1.0 and "firstboot" not in watch.events
    with console.open("ab") as fh:
        fh.write(b"ne\nboot-report[1]: zeke-boot-report: system running\n")
        fh.write(b'zeke-boot-report: first-event {"emotion": "happy"}\n')
    watch.poll(2.0)
    assert watch.events["firstboot"][0] == 2.0
    assert watch.events["system"] == (2.0, "running")
    assert json.loads(watch.events["first-event"][1]) == {"emotion": "happy"}
    with console.open("ab") as fh:
        fh.write(b"zeke-boot-report: system degraded\nzeke-boot-report: done\n")
    watch.poll(3.0)
    assert watch.events["system"] == (2.0, "running"), "the first report counts"
    assert "done" in watch.events


def test_console_watch_notices_a_kernel_panic(tmp_path):
    console = tmp_path / "console.log"
    console.write_text("---[ end Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    watch = ConsoleWatch(console)
    watch.poll(5.0)
    assert watch.events["panic"][0] == 5.0


@pytest.mark.parametrize(
    ("profile", "binary", "console"),
    [
        ("qemu-amd64", "qemu-system-x86_64", "ttyS0"),
        ("qemu-arm64", "qemu-system-aarch64", "ttyAMA0"),
    ],
)
def test_qemu_command_boots_the_image_as_built(tmp_path, profile, binary, console):
    manifest = _manifest(profile, ["zeke-kiosk.service"])
    prefix = tmp_path / profile
    cmd = qemu_command(manifest, prefix, tmp_path / "o.qcow2", tmp_path / "c.log", "tcg")
    assert cmd[0] == binary
    assert "-no-reboot" in cmd and "-nic" in cmd
    assert cmd[cmd.index("-kernel") + 1] == f"{prefix}.vmlinuz"
    assert cmd[cmd.index("-initrd") + 1] == f"{prefix}.initrd.img"
    append = cmd[cmd.index("-append") + 1]
    root = resolve(load_profile(profile)).root.partuuid
    assert f"root=PARTUUID={root}" in append and f"console={console}" in append
    assert append.endswith("zeke.boot_report=poweroff")
    assert cmd[cmd.index("-serial") + 1] == f"file:{tmp_path / 'c.log'}"
    assert "accel=tcg" in cmd[cmd.index("-machine") + 1]
    kvm = qemu_command(manifest, prefix, tmp_path / "o.qcow2", tmp_path / "c.log", "kvm")
    assert kvm[kvm.index("-cpu") + 1] == "host"


def _fake_image(tmp_path: Path, manifest: dict) -> Path:
    image = tmp_path / f"{manifest['profile']}.img.zst"
    image.write_bytes(b"not really")
    (tmp_path / f"{manifest['profile']}.manifest.json").write_text(json.dumps(manifest))
    return image


def test_boot_test_refuses_what_it_cannot_judge(tmp_path):
    with pytest.raises(ImageBuildError, match=r"is not an \.img\.zst"):
        load_manifest(tmp_path / "x.img")
    with pytest.raises(ImageBuildError, match="side by side"):
        load_manifest(tmp_path / "missing.img.zst")
    no_kiosk = _fake_image(tmp_path, _manifest("qemu-amd64", ["zeke-firstboot.service"]))
    with pytest.raises(BootTestError, match=r"enables no zeke-kiosk\.service") as info:
        boot_image(no_kiosk)
    assert "--ready-only" in info.value.hint
    with pytest.raises(ImageBuildError, match="unknown accelerator"):
        boot_image(no_kiosk, ready_only=True, accel="xen")
    board = tmp_path / "board"
    board.mkdir()
    rpi = _manifest("raspberrypi-arm64", ["zeke-kiosk.service"])
    with pytest.raises(ImageBuildError, match="boots with raspberrypi-firmware, not in qemu"):
        boot_image(_fake_image(board, rpi))
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    with pytest.raises(ImageBuildError, match="incomplete build"):
        boot_image(_fake_image(incomplete, {**rpi, "status": "incomplete"}))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_boot_scripts_are_valid_posix_shell(script):
    assert script.stat().st_mode & 0o111, f"{script.name} must be executable"
    assert script.read_text().startswith("#!/bin/sh\n")
    for shell in ("sh", "dash"):
        if shutil.which(shell):
            proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        proc = subprocess.run(
            ["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout
