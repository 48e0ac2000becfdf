"""``open_source``: one call for every kind; auto and demo; option handling."""

from __future__ import annotations

import pytest

from zeke.camera import DEMO_CLIP, open_source, resolve_uri
from zeke.errors import UsageError
from zeke.testing.fake_boards import build


def test_demo_is_the_bundled_clip():
    assert resolve_uri("demo") == str(DEMO_CLIP)
    with open_source("demo", pace=False) as source:
        assert source.describe()["path"] == str(DEMO_CLIP)


def test_auto_takes_the_first_camera_found(tmp_path):
    pc = build("generic-x86", tmp_path / "pc").root
    pi = build("raspberry-pi-5", tmp_path / "pi").root
    assert resolve_uri("auto", root=pc) == (
        "v4l2:///dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8E1F2A3F-video-index0"
    )
    assert resolve_uri("auto", root=pi) == "csi://0"


def test_auto_falls_back_to_the_demo_clip(tmp_path):
    assert resolve_uri("auto", root=tmp_path) == str(DEMO_CLIP)
    with open_source("auto", root=tmp_path, pace=False) as source:
        assert source.kind == "video"


def test_uri_options_win_over_keyword_options(tmp_path):
    from .conftest import write_clip

    clip = write_clip(tmp_path / "c.mp4", 3)
    with open_source(f"file://{clip}?loop=1", loop=False, pace=False) as source:
        assert source.describe()["loop"] is True
        assert len([source.read() for _ in range(7)]) == 7


def test_none_options_are_ignored_and_camera_options_pass_files_by():
    with open_source(str(DEMO_CLIP), width=None, height=480, fps=30.0, pace=False) as source:
        assert source.describe()["width"] == 640  # files keep their own size


def test_unknown_option():
    with pytest.raises(UsageError) as caught:
        open_source("demo", lopo=True)
    assert caught.value.message == "unknown camera option 'lopo'"
    assert "did you mean 'loop'" in caught.value.hint
