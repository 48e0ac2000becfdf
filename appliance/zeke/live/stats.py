"""Rolling per-stage latency (p50/p95), frame rate and drop counts for the live loop."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

#: queue: how old a frame is when inference takes it; total: capture to events published
STAGES = ("queue", "detect", "classify", "track", "total")


class StageStats:
    """Keeps the last ``window`` samples of each stage's milliseconds and frame times."""

    def __init__(self, window: int = 300):
        self.window = window
        self._ms = {stage: deque(maxlen=window) for stage in STAGES}
        self._frame_times: deque[float] = deque(maxlen=window)
        self.frames = 0
        self.dropped = 0
        self.faces = 0
        self.started = time.monotonic()
        self.first_event_s: float | None = None

    def add(self, timings_ms: dict[str, float], now: float | None = None) -> None:
        for stage, value in timings_ms.items():
            if stage in self._ms:
                self._ms[stage].append(value)
        self._frame_times.append(time.monotonic() if now is None else now)
        self.frames += 1

    def percentiles(self, stage: str) -> tuple[float, float]:
        samples = self._ms[stage]
        if not samples:
            return 0.0, 0.0
        p50, p95 = np.percentile(np.fromiter(samples, np.float64, len(samples)), (50, 95))
        return float(p50), float(p95)

    @property
    def fps(self) -> float:
        times = self._frame_times
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "fps": round(self.fps, 2),
            "latency_ms": {
                stage: dict(zip(("p50", "p95"), (round(v, 3) for v in self.percentiles(stage))))
                for stage in STAGES
            },
            "first_event_s": None if self.first_event_s is None else round(self.first_event_s, 3),
        }
