"""The live loop: a capture thread feeding the newest frame to vision, tracking and sinks.

Capture runs in its own thread and never waits for inference (``LatestSlot``). The loop
processes the newest frame, updates tracks, hands events to every sink and a snapshot to
the UI, and kicks the systemd watchdog once per iteration, so a hung pipeline stops the
heartbeat and gets restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from zeke.errors import ZekeError
from zeke.events import EmotionEvent
from zeke.live.slot import LatestSlot
from zeke.live.stats import StageStats
from zeke.track.tracker import Tracker
from zeke.vision.pipeline import FacePipeline, FrameResult


class Sink(Protocol):
    name: str

    def publish(self, event: EmotionEvent) -> None: ...

    def state(self) -> str: ...

    def close(self) -> None: ...


@dataclass
class Captured:
    frame: Any  # zeke.camera.base.Frame
    read_ms: float


@dataclass
class Snapshot:
    """What the UI needs after each processed frame (the image only for the local preview)."""

    image: np.ndarray | None
    result: FrameResult
    tracker: Tracker
    stats: StageStats
    events: list[EmotionEvent]
    source_state: str
    paused: bool
    recent: list[EmotionEvent] = field(default_factory=list)


class CaptureThread(threading.Thread):
    """Reads the source as fast as it delivers and keeps only the newest frame."""

    def __init__(self, source, slot: LatestSlot[Captured], stop: threading.Event):
        super().__init__(name="zeke-capture", daemon=True)
        self.source = source
        self.slot = slot
        self.stop_event = stop
        self.error: ZekeError | None = None
        self.ended = False

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    self.ended = True
                    break
                self.slot.put(Captured(frame, (time.perf_counter() - t0) * 1e3))
        except ZekeError as err:
            self.error = err
        finally:
            self.slot.close()


def media_clock(source) -> Callable[[Any], float]:
    """Time base for tracking: the clip's own timeline for recordings, capture time for cameras."""
    info = {}
    try:
        info = source.describe()
    except Exception:
        info = {}
    fps = info.get("fps") or 0
    if not info.get("live", True) and fps and info.get("kind") == "video":
        return lambda frame: frame.index / float(fps)
    return lambda frame: frame.ts


class LiveLoop:
    def __init__(
        self,
        source,
        pipeline: FacePipeline,
        tracker: Tracker,
        sinks: list[Sink],
        *,
        max_frames: int | None = None,
        duration: float | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        keep_image: bool = False,
        watchdog=None,
        on_ready: Callable[[], None] | None = None,
        lossless: bool = False,
    ):
        self.source = source
        self.pipeline = pipeline
        self.tracker = tracker
        self.sinks = sinks
        self.max_frames = max_frames
        self.duration = duration
        self.on_snapshot = on_snapshot
        self.keep_image = keep_image
        self.watchdog = watchdog
        self.on_ready = on_ready
        self.stats = StageStats()
        self.slot: LatestSlot[Captured] = LatestSlot(lossless=lossless)
        self.stop_event = threading.Event()
        self.paused = threading.Event()
        self.recent: list[EmotionEvent] = []
        self.events_total = 0
        self._last_snapshot: Snapshot | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def toggle_pause(self) -> None:
        if self.paused.is_set():
            self.paused.clear()
        else:
            self.paused.set()

    def _source_state(self, capture: CaptureThread) -> str:
        health = getattr(self.source, "health", None)
        state = getattr(health, "state", None)
        if state is not None:
            return str(getattr(state, "value", state))
        if capture.error is not None:
            return "failed"
        return "ended" if capture.ended else "ok"

    def _publish(self, events: list[EmotionEvent]) -> None:
        for event in events:
            for sink in self.sinks:
                sink.publish(event)
        if events:
            self.events_total += len(events)
            if self.stats.first_event_s is None:
                self.stats.first_event_s = time.monotonic() - self.stats.started
            self.recent = (self.recent + events)[-200:]

    def run(self) -> StageStats:
        """Run until the source ends, a bound is reached or ``stop`` is called."""
        self.source.open()
        clock = media_clock(self.source)
        capture = CaptureThread(self.source, self.slot, self.stop_event)
        capture.start()
        started = time.monotonic()
        ready_sent = False
        try:
            while not self.stop_event.is_set():
                if self.watchdog is not None:
                    self.watchdog.kick()
                if self.duration is not None and time.monotonic() - started >= self.duration:
                    break
                item = self.slot.take(timeout=0.25)
                if item is None:
                    if self.slot.closed:
                        break
                    continue
                if self.paused.is_set():
                    self._show_paused()
                    continue
                self._process(item, clock, capture)
                if not ready_sent and self.on_ready is not None:
                    self.on_ready()
                    ready_sent = True
                if self.max_frames is not None and self.stats.frames >= self.max_frames:
                    break
        finally:
            self.stop_event.set()
            self.stats.dropped = self.slot.dropped
            self._publish(self.tracker.close(time.time(), self.stats.frames))
            capture.join(timeout=5)
            self.source.close()
        if capture.error is not None and self.stats.frames == 0:
            raise capture.error
        return self.stats

    def _show_paused(self) -> None:
        last = self._last_snapshot
        if last is not None and self.on_snapshot is not None:
            last.paused = True
            self.on_snapshot(last)

    def _process(self, item: Captured, clock, capture: CaptureThread) -> None:
        frame = item.frame
        queued_ms = (time.monotonic() - frame.ts) * 1e3
        result = self.pipeline.process(frame.image)
        t0 = time.perf_counter()
        faces = result.faces
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        scores = np.array([f.score for f in faces], np.float32)
        probs = None
        if faces and faces[0].emotions:
            probs = np.array([list(f.emotions.values()) for f in faces], np.float32)
        # An event describes the moment its frame was captured, in wall-clock time.
        captured_wall = time.time() - (time.monotonic() - frame.ts)
        events = self.tracker.update(boxes, probs, scores, clock(frame), captured_wall, frame.index)
        track_ms = (time.perf_counter() - t0) * 1e3
        self._publish(events)
        total_ms = (time.monotonic() - frame.ts) * 1e3
        self.stats.add(
            {"queue": queued_ms, **result.timings_ms, "track": track_ms, "total": total_ms}
        )
        self.stats.faces = len(faces)
        self.stats.dropped = self.slot.dropped
        if self.on_snapshot is not None:
            self._last_snapshot = Snapshot(
                image=frame.image if self.keep_image else None,
                result=result,
                tracker=self.tracker,
                stats=self.stats,
                events=events,
                source_state=self._source_state(capture),
                paused=self.paused.is_set(),
                recent=self.recent,
            )
            self.on_snapshot(self._last_snapshot)
