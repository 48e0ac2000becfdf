"""A one-frame mailbox between capture and inference: the newest frame wins.

Capture never waits for inference; inference always gets the freshest frame. A frame that
is replaced before it was taken counts as dropped, so a slow stage shows up as drops, never
as growing latency.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Newest-wins by default; ``lossless=True`` makes ``put`` wait for the reader instead
    (for recordings played as fast as possible, where every frame should be seen)."""

    def __init__(self, lossless: bool = False) -> None:
        self.lossless = lossless
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T) -> None:
        with self._cond:
            while self.lossless and self._item is not None and not self._closed:
                self._cond.wait(0.1)
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout``; None on timeout or when closed and empty."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and self._item is None
