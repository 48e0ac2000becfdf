"""USB cameras: no camera exists on this machine, so these are the failures a user meets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from zeke.camera import open_source
from zeke.camera.v4l2 import V4l2Source
from zeke.errors import InputError


def test_absent_device():
    with pytest.raises(InputError) as caught:
        open_source("v4l2:///dev/video97")
    assert caught.value.message == "no camera at /dev/video97"
    assert "zeke setup" in caught.value.hint


def test_a_char_device_that_is_not_a_camera():
    with pytest.raises(InputError) as caught:
        open_source("v4l2:///dev/null")
    assert caught.value.message == "/dev/null did not open as a camera"


def test_no_permission_names_the_video_group():
    """As a user outside the device's group (a forked child drops root to 'nobody' for this)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        node = Path(folder) / "video0"
        node.write_bytes(b"")
        node.chmod(0o600)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                V4l2Source(node).open()
                os.write(write_end, b"opened")
            except InputError as err:
                os.write(write_end, f"{err.message}\n{err.hint}".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            message, hint = pipe.read().split("\n", 1)
        os.waitpid(pid, 0)
    assert message == f"no permission to open {node}"
    assert "sudo usermod -aG video $USER" in hint


def test_options_are_recorded_for_negotiation():
    source = V4l2Source(Path("/dev/video0"), width=1280, height=720, fps=30, format="MJPG")
    assert source.describe()["requested"] == {
        "width": 1280, "height": 720, "fps": 30, "format": "MJPG"
    }  # fmt: skip
    assert source.live and source.kind == "v4l2"
