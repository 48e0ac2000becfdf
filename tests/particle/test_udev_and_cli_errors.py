"""The udev rules file, and CLI errors as a user sees them in a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from zeke.testing.particle_firmware import build_user_app

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "systemd" / "udev" / "50-zeke-particle.rules"
RULE_TOKEN = re.compile(r'^(?P<key>[A-Z_]+(?:\{[^}]+\})?)(?P<op>==|!=|=|\+=|:=)"(?P<value>[^"]*)"$')


def _rules() -> list[list[tuple[str, str, str]]]:
    parsed = []
    for line in RULES.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = []
        for part in (p.strip() for p in line.split(",")):
            match = RULE_TOKEN.match(part)
            assert match, f"not a udev key/value: {part!r}"
            tokens.append((match["key"], match["op"], match["value"]))
        parsed.append(tokens)
    return parsed


def test_udev_rules_grant_access_and_keep_modemmanager_away():
    rules = _rules()
    particle = [
        r
        for r in rules
        if ("ATTR{idVendor}", "==", "2b04") in r or ("ATTRS{idVendor}", "==", "2b04") in r
    ]
    assert len(particle) == 2
    tty = next(r for r in particle if ("SUBSYSTEM", "==", "tty") in r)
    usb = next(r for r in particle if ("SUBSYSTEM", "==", "usb") in r)
    assert ("GROUP", "=", "dialout") in tty and ("ATTRS{idProduct}", "==", "c0??") in tty
    assert ("GROUP", "=", "plugdev") in usb and ("ATTR{idProduct}", "==", "[cd]0??") in usb
    for rule in particle:
        assert ("ENV{ID_MM_DEVICE_IGNORE}", "=", "1") in rule
    labels = [r for r in rules if r[0][0] == "LABEL"]
    assert labels == [[("LABEL", "=", "zeke_particle_end")]]


def _zeke(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zeke", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_invalid_file_is_one_line_with_exit_5(tmp_path):
    bad = bytearray(build_user_app("xenon", 11012))
    bad[100] ^= 0xFF
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(bad))
    proc = _zeke("flash-node", str(path), "--yes")
    assert proc.returncode == 5
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: corrupt firmware: CRC-32 stored 0x")
    assert lines[1].startswith("hint: ")


def test_no_device_is_exit_2(tmp_path):
    path = tmp_path / "app.bin"
    path.write_bytes(build_user_app("xenon", 11012))
    proc = _zeke("flash-node", str(path), "--port", str(tmp_path / "ttyACM9"), "--yes")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'ttyACM9'} does not exist" in " ".join(proc.stderr.split())


def test_flash_node_help_documents_exit_codes():
    proc = _zeke("flash-node", "--help")
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0
    for phrase in ("--enter-listening", "--dry-run", "--yes", "4 not in listening mode"):
        assert phrase in text
