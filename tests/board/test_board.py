"""Board and accelerator detection against fixture trees of real boards."""

from __future__ import annotations

import pytest

from zeke.board import (
    detect_board,
    find_edgetpus,
    jetpack_for,
    parse_nv_tegra_release,
    probe_library,
)
from zeke.testing.fake_boards import BOARDS, _Tree, build
from zeke.testing.fake_boards import main as fake_boards_main


def board(tmp_path, name):
    return detect_board(build(name, tmp_path / name).root)


def test_coral_dev_board(tmp_path):
    info = board(tmp_path, "coral-dev-board")
    assert (info.kind, info.model, info.arch) == ("coral-dev-board", "Coral Dev Board", "aarch64")
    assert info.os == "Mendel Linux 5.3" and info.details["mendel"] == "5.3"
    assert info.details["dt_model"] == "Freescale i.MX8MQ Phanbell"
    assert [(t.bus, t.location, t.state) for t in info.edgetpus] == [
        ("pcie", "/dev/apex_0", "ready")
    ]
    assert info.libedgetpu is None  # a fixture tree: this process's libraries are not its own
    assert info.recommended_backend() == "cpu"  # not proven usable without the library


def test_jetson_orin_nano(tmp_path):
    info = board(tmp_path, "jetson-orin-nano")
    assert info.kind == "jetson" and info.model == "NVIDIA Jetson Orin Nano Developer Kit"
    assert (info.details["l4t"], info.details["jetpack"]) == ("36.3.0", "6.0")
    assert info.os == "L4T R36.3.0 (JetPack 6.0)"
    assert (info.details["cpus"], info.details["memory_mb"]) == (6, 7619)
    assert info.edgetpus == ()


def test_raspberry_pi_5(tmp_path):
    info = board(tmp_path, "raspberry-pi-5")
    assert (info.kind, info.model) == ("raspberry-pi", "Raspberry Pi 5 Model B Rev 1.0")
    assert info.details["generation"] == 5 and info.os == "Debian GNU/Linux 12 (bookworm)"
    assert info.plan()["detector"] == "BlazeFace on the CPU"
    assert info.plan()["reason"] == "no Edge TPU found"


def test_generic_x86_with_a_usb_coral_before_firmware(tmp_path):
    info = board(tmp_path, "generic-x86")
    assert (info.kind, info.model, info.arch) == (
        "generic", "Intel(R) Client Systems NUC11TNHi5", "x86_64"
    )  # fmt: skip
    assert info.details["dmi"]["board"] == "NUC11TNBi5"
    assert [(t.bus, t.location, t.state) for t in info.edgetpus] == [
        ("usb", "usb 2-1", "needs-firmware")
    ]


def test_usb_coral_after_firmware_load_is_ready(tmp_path):
    root = build("generic-x86", tmp_path / "pc").root
    (root / "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/idVendor").write_text("18d1\n")
    (root / "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/idProduct").write_text("9302\n")
    assert [t.state for t in find_edgetpus(root)] == ["ready"]


def test_a_usable_edgetpu_changes_the_plan(tmp_path):
    from dataclasses import replace

    info = replace(board(tmp_path, "coral-dev-board"), libedgetpu=True)
    assert info.recommended_backend() == "edgetpu" and info.recommended_detector() == "ssd"
    plan = info.plan()
    assert plan["detector"] == "SSD face model on the Edge TPU (pcie, /dev/apex_0)"
    assert plan["reason"] == "Edge TPU found and libedgetpu.so.1 loads"
    assert info.to_dict()["plan"] == plan


def test_generic_arm64_without_dmi(tmp_path):
    tree = _Tree(tmp_path / "arm")
    tree.system("aarch64", 4, 4000000, "Debian GNU/Linux 12 (bookworm)", "debian")
    tree.device_tree("Radxa ROCK 5B", ["radxa,rock-5b", "rockchip,rk3588"])
    info = detect_board(tree.root)
    assert (info.kind, info.model, info.arch) == ("generic", "Radxa ROCK 5B", "aarch64")


def test_empty_tree_is_a_generic_machine(tmp_path):
    info = detect_board(tmp_path, machine="riscv64")
    assert (info.kind, info.model, info.arch) == ("generic", "generic riscv64", "riscv64")


def test_this_machine_is_detected_and_the_library_probed():
    info = detect_board()
    assert info.kind in ("generic", "raspberry-pi", "jetson", "coral-dev-board")
    assert info.libedgetpu in (True, False)
    assert info.arch and info.details["cpus"] >= 1


def test_probe_library_reports_why():
    ok, error = probe_library("libzeke-does-not-exist.so.7")
    assert ok is False and "libzeke-does-not-exist.so.7" in error
    assert probe_library("libc.so.6") == (True, None)


@pytest.mark.parametrize(
    ("text", "l4t", "jetpack"),
    [
        (
            "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64",
            "32.7.1",
            "4.6.1",
        ),
        (
            "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64",
            "35.4.1",
            "5.1.2",
        ),
        (
            "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64",
            "36.4.3",
            "6.2",
        ),
        ("# R36 (release), REVISION: 4.9, GCID: 1, BOARD: generic", "36.4.9", "6.2.1"),
        ("# R37 (release), REVISION: 0.0", "37.0.0", "unknown"),
    ],
)
def test_l4t_to_jetpack(text, l4t, jetpack):
    assert parse_nv_tegra_release(text) == l4t
    assert jetpack_for(l4t) == jetpack


def test_garbage_release_file():
    assert parse_nv_tegra_release("hello") is None


def test_every_fixture_can_be_built_from_the_command_line(tmp_path, capsys):
    for name in BOARDS:
        assert fake_boards_main([name, str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == len(BOARDS) and "Raspberry Pi 5" in out
    with pytest.raises(SystemExit):
        fake_boards_main(["beaglebone", str(tmp_path / "x")])


def test_fixture_trees_are_relocatable(tmp_path):
    import shutil

    root = build("generic-x86", tmp_path / "a").root
    moved = shutil.move(str(root), str(tmp_path / "b"))
    assert detect_board(moved).edgetpus[0].location == "usb 2-1"
