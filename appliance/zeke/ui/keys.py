"""Single-key commands on a terminal (q quits, p pauses) without waiting for Enter."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable


class KeyReader(threading.Thread):
    """Reads keys from stdin in cbreak mode while the screen is live; restores the tty."""

    def __init__(self, handlers: dict[str, Callable[[], None]]):
        super().__init__(name="zeke-keys", daemon=True)
        self.handlers = handlers
        self._stop = threading.Event()
        self._saved = None
        self.fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() else None

    @property
    def active(self) -> bool:
        return self.fd is not None

    def start(self) -> None:
        if self.fd is None:
            return
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        super().start()

    def run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                key = os.read(self.fd, 1).decode(errors="ignore").lower()
            except OSError:
                return
            handler = self.handlers.get(key)
            if handler is not None:
                handler()

    def stop(self) -> None:
        self._stop.set()
        if self._saved is not None and self.fd is not None:
            import termios

            with contextlib.suppress(Exception):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
