"""Shared helpers for the image builder's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The builder is run from the checkout (python -m image_build): make it importable the same
# way, ahead of this test directory's own name.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "image_build", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def run_cli():
    """``python -m image_build ARGS`` from the checkout, as a user runs it."""
    return _run_cli


@pytest.fixture
def minimal_profile() -> str:
    """A valid qemu-style profile text with a ``{name}`` placeholder."""
    return MINIMAL


@pytest.fixture
def write_profile(tmp_path: Path):
    """Write a profile TOML (name taken from the file name) and return its path."""

    def write(text: str, name: str = "test-board") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


MINIMAL = """
name = "{name}"
description = "a test board"
board = "test"
hostname = "zeke"
packages = ["systemd-sysv", "python3"]

[distribution]
name = "debian"
suite = "bookworm"
architecture = "amd64"
mirror = "http://deb.debian.org/debian"
python = "3.11.2"
glibc = "2.36"

[kernel]
packages = ["linux-image-cloud-amd64"]
boot = "qemu-direct"
cmdline = ["ro", "console=ttyS0"]
console = "ttyS0"

[qemu]
binary = "qemu-system-x86_64"
machine = "q35"
cpu = "max"

[layout]
[[layout.partitions]]
name = "boot"
filesystem = "vfat"
mountpoint = "/boot/firmware"
size_mib = 64
[[layout.partitions]]
name = "root"
filesystem = "ext4"
mountpoint = "/"

[zeke]
units = ["zeke-firstboot.service"]
"""
