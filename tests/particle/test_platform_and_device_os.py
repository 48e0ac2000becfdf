"""Wrong platform refused on the host before sending; Device OS eras; Device OS 6 and DFU."""

from __future__ import annotations

import stat

import pytest

from zeke.particle.console import ListeningConsole
from zeke.particle.errors import DeviceRejectedError
from zeke.particle.port import Link
from zeke.particle.ymodem import YModemSender
from zeke.testing.particle_firmware import build_user_app

from .support import call_with_deadline


@pytest.mark.parametrize("device_os", ["1.5.2", "4.2.0"])
def test_xenon_file_to_an_argon_is_refused_before_the_port_opens(
    sims, inject, xenon_app, zeke_run, device_os
):
    argon = sims("argon", device_os)
    inject(argon)

    run = zeke_run("flash-node", str(xenon_app), "--yes")

    assert run.code == 5, run.stderr
    assert "firmware is for Xenon (id 14) but the device is Argon (id 12)" in run.stderr
    assert argon.received == 0 and argon.line_speeds == [] and argon.transfers == []


def test_port_without_usb_ids_learns_the_platform_from_s_and_refuses_before_f(
    sims, xenon_app, zeke_run, monkeypatch
):
    argon = sims("argon", "1.5.2")
    monkeypatch.setattr("zeke.particle.discovery.system_comports", lambda: [])
    monkeypatch.setenv("ZEKE_PARTICLE_TIMEOUT_SCALE", "0.3")

    run = zeke_run("flash-node", str(xenon_app), "--port", argon.port, "--yes")

    assert run.code == 5, run.stderr
    assert "but the device is Argon (id 12)" in run.stderr
    commands = [e for e in argon.events if e.startswith("rx command")]
    assert commands == ["rx command 'v'", "rx command 's'"], "asked, never sent 'f'"
    assert argon.transfers == []


@pytest.mark.parametrize(("device_os", "reply"), [("1.5.2", "0x10"), ("4.2.0", "-1360")])
def test_the_device_itself_rejects_a_forced_wrong_platform_image(sims, xenon_app, device_os, reply):
    """Bypassing host validation, the simulated Argon answers as the spec's era says."""
    argon = sims("argon", device_os)

    def force() -> None:
        with Link.open(argon.port) as link:
            assert ListeningConsole(link).start_receive(5.0)
            YModemSender(link, block_size=128).send("binary", xenon_app.read_bytes())

    box = call_with_deadline(force)
    error = box["error"]
    assert isinstance(error, DeviceRejectedError) and error.exit_code == 8
    assert error.code == reply and "platform mismatch" in error.message
    expected = b"\x18\x18Validation failed: " + reply.encode() + b"\r\n"
    assert bytes(argon.outputs[-1]).endswith(expected)
    assert argon.transfers[0].count("data") == 87 and argon.app_image is None


def test_256_kb_app_flashes_to_an_argon_on_device_os_4(sims, inject, tmp_path, zeke_run):
    app = tmp_path / "big.bin"
    app.write_bytes(build_user_app("argon", 256 * 1024, module_index=2, system_dependency=3100))
    argon = sims("argon", "4.2.0")
    inject(argon)

    run = zeke_run("flash-node", str(app), "--yes")

    assert run.code == 0, run.stderr
    assert argon.app_image == app.read_bytes()
    assert argon.transfers[0].count("data") == 256


def test_256_kb_app_to_an_argon_on_1_5_is_refused_after_reading_the_version(
    sims, inject, tmp_path, zeke_run
):
    app = tmp_path / "big.bin"
    app.write_bytes(build_user_app("argon", 256 * 1024, module_index=2))
    argon = sims("argon", "1.5.2")
    inject(argon)

    run = zeke_run("flash-node", str(app), "--yes")

    assert run.code == 5, run.stderr
    assert "needs Device OS 3.1.0" in " ".join(run.stderr.split())
    assert argon.transfers == []


def _fake_dfu_util(directory) -> None:
    tool = directory / "dfu-util"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("dfu_util_installed", [True, False])
def test_device_os_6_is_refused_with_the_dfu_path(
    sims, inject, tmp_path, zeke_run, monkeypatch, dfu_util_installed
):
    app = tmp_path / "argon.bin"
    app.write_bytes(build_user_app("argon", 20000))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if dfu_util_installed:
        _fake_dfu_util(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    argon = sims("argon", "6.0.0")
    inject(argon)

    run = zeke_run("flash-node", str(app), "--yes")

    text = " ".join(run.stderr.split())
    assert run.code == 6, run.stderr
    assert "Device OS 6.0.0 no longer supports serial (YMODEM) flashing; use DFU" in text
    if dfu_util_installed:
        assert "dfu-util -d 2b04:d00c -a 0 -s 0x000d4000:leave -D argon.bin" in text
    else:
        assert "apt install dfu-util" in text
    assert "rx command 'f'" not in argon.events and argon.transfers == []


def test_device_os_6_ignores_the_listening_trigger_and_never_hangs(
    sims, inject, tmp_path, zeke_run
):
    app = tmp_path / "argon.bin"
    app.write_bytes(build_user_app("argon", 20000))
    argon = sims("argon", "6.2.0", listening=False)
    inject(argon)

    run = zeke_run("flash-node", str(app), "--yes", "--enter-listening")

    assert run.code == 4, run.stderr
    assert 28800 in argon.line_speeds and 14400 not in argon.line_speeds
    assert any("28800 baud ignored" in event for event in argon.events)
