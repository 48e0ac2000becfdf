"""Resilience: a source that stops delivering is reopened with backoff; the caller hears of it."""

from __future__ import annotations

import shutil
import threading

import pytest

from zeke.camera import Backoff, ResilientSource, SourceFailed, SourceState, open_source
from zeke.camera.base import Frame, Source, SourceLost
from zeke.camera.video import VideoFileSource
from zeke.errors import InputError, UsageError
from zeke.resources import DEMO_CLIP

from .conftest import frame_number, write_clip

FAST = Backoff(initial=0.02, factor=2.0, maximum=0.1)


class StateLog:
    """Records every health report, as a UI would show it."""

    def __init__(self, on_attempt=None):
        self.states: list[tuple[str, int]] = []
        self.on_attempt = on_attempt

    def __call__(self, health) -> None:
        self.states.append((health.state.value, health.attempts))
        if self.on_attempt and health.state is SourceState.RECONNECTING:
            self.on_attempt(health.attempts)

    @property
    def transitions(self) -> list[str]:
        out: list[str] = []
        for state, _ in self.states:
            if not out or out[-1] != state:
                out.append(state)
        return out


def test_truncated_clip_is_reopened_once_restored(demo_copy, tmp_path):
    """The file is cut off mid-run; reads fail, reopening fails until it is put back."""
    backup = tmp_path / "backup.mp4"
    shutil.copyfile(demo_copy, backup)

    def restore_after_three(attempt: int) -> None:
        if attempt == 3:
            shutil.copyfile(backup, demo_copy)

    log = StateLog(restore_after_three)
    source = open_source(str(demo_copy), resilient=True, pace=False, backoff=FAST, on_state=log)
    try:
        before = [source.read() for _ in range(10)]
        with open(demo_copy, "r+b") as stream:
            stream.truncate(demo_copy.stat().st_size // 2)
        after = []
        while source.health.reconnects == 0 and len(after) < 1000:
            frame = source.read()
            assert frame is not None, "nothing crashes, nothing ends"
            after.append(frame)
        for _ in range(20):  # and it keeps going
            after.append(source.read())
        health = source.describe()["health"]
    finally:
        source.close()
    assert log.transitions == ["reconnecting", "ok"]
    assert max(attempts for state, attempts in log.states if state == "reconnecting") == 3
    assert health["state"] == "ok" and health["reconnects"] == 1
    assert "stopped decoding" in health["last_error"] or "cannot" in health["last_error"]
    indices = [f.index for f in before + after]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert all(isinstance(f, Frame) and f.image.shape == (480, 640, 3) for f in after)
    assert 10 < len(after) - 20 < 360, "frames until the cut, then the reopened clip"


def test_removed_file_is_noticed_at_the_loop_and_recovers(tmp_path):
    clip = write_clip(tmp_path / "loop.mp4", 8)
    kept = tmp_path / "kept.mp4"
    shutil.copyfile(clip, kept)
    log = StateLog(lambda attempt: attempt == 2 and shutil.copyfile(kept, clip))
    source = open_source(str(clip), resilient=True, pace=False, loop=True, backoff=FAST,
                         on_state=log)  # fmt: skip
    try:
        numbers = [frame_number(source.read().image) for _ in range(4)]
        clip.unlink()  # the open file still plays to its end; the loop reopen finds nothing
        numbers += [frame_number(source.read().image) for _ in range(12)]
    finally:
        source.close()
    assert numbers == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]
    assert log.transitions == ["reconnecting", "ok"]


def test_gives_up_after_max_attempts_with_a_clear_error(demo_copy):
    log = StateLog()
    source = open_source(str(demo_copy), resilient=True, pace=False, backoff=FAST,
                         max_attempts=3, on_state=log)  # fmt: skip
    source.read()
    demo_copy.write_bytes(b"")  # truncated to nothing and never restored
    with pytest.raises(SourceFailed) as caught:
        while source.read() is not None:
            pass
    source.close()
    assert "did not come back after 3 attempts" in caught.value.message
    assert caught.value.exit_code == 3
    assert log.transitions == ["reconnecting", "failed"]
    assert source.health.state is SourceState.FAILED


class FlakyCamera(Source):
    """A live source that stops after ``frames`` frames, like an unplugged webcam."""

    kind = "v4l2"
    live = True
    opened = 0

    def __init__(self, frames: int, end_with_none: bool = False):
        super().__init__("v4l2:///dev/video9")
        self.frames, self.end_with_none = frames, end_with_none

    def _open(self) -> None:
        FlakyCamera.opened += 1

    def _read(self):
        import numpy as np

        if self.frames == 0:
            if self.end_with_none:
                return None
            raise OSError(19, "No such device")
        self.frames -= 1
        return self._frame(np.zeros((4, 4, 3), np.uint8))

    def _close(self) -> None:
        pass


@pytest.mark.parametrize("end_with_none", [False, True])
def test_live_source_that_stops_is_reopened(end_with_none):
    FlakyCamera.opened = 0
    log = StateLog()
    source = ResilientSource(lambda: FlakyCamera(3, end_with_none), backoff=FAST, on_state=log)
    with source:
        frames = [source.read() for _ in range(10)]
    assert [f.index for f in frames] == list(range(10))
    assert FlakyCamera.opened == 4  # first open and three reopens
    assert source.health.reconnects == 3
    assert log.transitions == ["reconnecting", "ok"] * 3
    assert source.kind == "v4l2" and source.live


def test_a_camera_absent_at_start_is_waited_for(tmp_path):
    clip = tmp_path / "late.mp4"
    log = StateLog(lambda attempt: attempt == 2 and write_clip(clip, 3))
    source = open_source(str(clip), resilient=True, wait_first_open=True, pace=False,
                         backoff=FAST, on_state=log)  # fmt: skip
    with source:
        assert frame_number(source.read().image) == 0
    assert log.transitions == ["reconnecting", "ok"]


def test_without_waiting_a_missing_camera_fails_fast(tmp_path):
    with pytest.raises(InputError, match="no such video file"):
        open_source(str(tmp_path / "none.mp4"), resilient=True)


def test_permanent_errors_are_not_retried():
    calls = []

    def factory():
        calls.append(1)
        if len(calls) > 1:
            raise UsageError("bad option")
        return FlakyCamera(1)

    source = ResilientSource(factory, backoff=FAST).open()
    source.read()
    with pytest.raises(UsageError):
        source.read()
    assert len(calls) == 2


def test_state_reports_come_from_the_reading_thread(demo_copy):
    threads = set()
    source = open_source(str(DEMO_CLIP), resilient=True, pace=False, backoff=FAST,
                         on_state=lambda h: threads.add(threading.get_ident()))  # fmt: skip
    with source:
        source.read()
        source._lost(SourceLost("simulated"))
        source.read()
    assert threads == {threading.get_ident()}


def test_backoff_schedule():
    backoff = Backoff(initial=0.5, factor=2.0, maximum=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_file_sources_end_normally_through_the_wrapper(tmp_path):
    clip = write_clip(tmp_path / "end.mp4", 5)
    source = ResilientSource(lambda: VideoFileSource(clip, pace=False), backoff=FAST)
    with source:
        frames = list(source)
    assert len(frames) == 5 and source.health.state is SourceState.OK
