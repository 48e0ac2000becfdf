"""Video files as cameras: every frame in order, pacing, dropping late frames, looping."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from zeke.camera import open_source
from zeke.camera.base import SourceLost
from zeke.camera.video import VideoFileSource
from zeke.errors import InputError
from zeke.resources import DEMO_CLIP

from .conftest import frame_number, write_clip


def test_demo_clip_reads_every_frame_in_order():
    with open_source(str(DEMO_CLIP), pace=False) as source:
        info = source.describe()
        frames = list(source)
    assert info["kind"] == "video" and info["live"] is False
    assert (info["width"], info["height"], info["fps"]) == (640, 480, 15.0)
    assert len(frames) == info["frame_count"] == 360
    assert [f.index for f in frames] == list(range(360))
    first = frames[0].image
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8
    stamps = [f.ts for f in frames]
    assert all(b >= a for a, b in itertools.pairwise(stamps))
    assert source.read() is None or not source.is_open


def test_frames_come_out_in_file_order(short_clip):
    with VideoFileSource(short_clip, pace=False) as source:
        levels = [frame_number(f.image) for f in source]
    assert levels == list(range(12))


def test_pacing_follows_the_clip_frame_rate(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", 10, fps=20.0)
    with VideoFileSource(clip, pace=True, drop_late=False) as source:
        t0 = time.monotonic()
        frames = list(source)
        elapsed = time.monotonic() - t0
    assert len(frames) == 10
    # ten frames at 20 fps: the last is due 9/20 s after the first (a lower bound only)
    assert elapsed >= 9 / 20 - 0.02


def test_a_slow_reader_misses_frames_like_with_a_live_camera(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", 40, fps=20.0)
    with VideoFileSource(clip, pace=True) as source:
        seen = []
        while (frame := source.read()) is not None:
            seen.append((frame.index, frame_number(frame.image)))
            time.sleep(0.12)  # slower than 20 fps
        dropped = source.describe()["dropped"]
    indices = [i for i, _ in seen]
    assert indices == sorted(indices) and len(indices) < 40
    assert dropped == 40 - len(indices) or indices[-1] < 39
    assert all(index == level for index, level in seen), "index is the clip position"


def test_loop_reopens_the_file_and_keeps_counting(short_clip):
    with VideoFileSource(short_clip, pace=False, loop=True) as source:
        frames = [source.read() for _ in range(30)]
        info = source.describe()
    assert [f.index for f in frames] == list(range(30))
    assert [frame_number(f.image) for f in frames] == [i % 12 for i in range(30)]
    assert info["passes"] == 3


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as caught:
        open_source(str(tmp_path / "nope.mp4"))
    assert caught.value.message == f"no such video file: {tmp_path / 'nope.mp4'}"
    assert caught.value.exit_code == 3


def test_not_a_video(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is text, not a video")
    with pytest.raises(InputError) as caught:
        open_source(str(fake))
    assert "cannot decode" in caught.value.message and str(fake) in caught.value.message


def test_a_file_cut_off_while_playing_raises_source_lost(demo_copy):
    source = VideoFileSource(demo_copy, pace=False).open()
    try:
        for _ in range(5):
            assert source.read() is not None
        with open(demo_copy, "r+b") as stream:
            stream.truncate(demo_copy.stat().st_size // 3)
        with pytest.raises(SourceLost) as caught:
            while source.read() is not None:
                pass
        assert "stopped decoding at frame" in caught.value.message
        assert "of 360" in caught.value.message
    finally:
        source.close()
