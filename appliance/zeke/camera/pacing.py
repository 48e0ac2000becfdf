"""Real-time pacing for recorded sources: frame n of a stream at ``fps`` is due n/fps after
the first one, so a clip or a photo folder plays at its own speed, as a camera would."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps until a frame is due and says how late it is when it is not."""

    def __init__(self, fps: float):
        self.fps = fps
        self._t0: float | None = None

    def reset(self) -> None:
        """Start the clock again at the next frame (a new open)."""
        self._t0 = None

    def wait(self, index: int) -> float:
        """Sleep until frame ``index`` is due; 0.0 when it was on time, else seconds late."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - index / self.fps
        late = now - (self._t0 + index / self.fps)
        if late < 0:
            time.sleep(-late)
            return 0.0
        return late

    def restart(self, index: int) -> None:
        """Make frame ``index`` due now: give up catching up after a long stall."""
        self._t0 = time.monotonic() - index / self.fps
