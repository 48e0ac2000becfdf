"""Where events go: JSON lines on stdout, the local event socket, the UI's history."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from zeke.events import EmotionEvent, EventServer


class JsonLinesSink:
    """One JSON object per event on a stream (stdout for ``--json``)."""

    name = "json"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.count = 0
        self._lock = threading.Lock()
        self._broken = False

    def publish(self, event: EmotionEvent) -> None:
        if self._broken:
            return
        with self._lock:
            try:
                self.stream.write(event.to_json() + "\n")
                self.stream.flush()
                self.count += 1
            except BrokenPipeError:
                self._broken = True  # the reader went away (e.g. `| head`): stop writing

    def state(self) -> str:
        return "closed" if self._broken else f"{self.count} events"

    def close(self) -> None:
        pass


class SocketSink:
    """Serves events on the local Unix socket for the mesh forwarder and other readers."""

    name = "socket"

    def __init__(self, server: EventServer):
        self.server = server
        self.count = 0

    def publish(self, event: EmotionEvent) -> None:
        self.server.publish(event)
        self.count += 1

    def state(self) -> str:
        readers = self.server.reader_count
        text = f"{readers} reader{'s' if readers != 1 else ''} · {self.server.path}"
        return text + " · out of descriptors, new readers wait" if self.server.stalled else text

    def close(self) -> None:
        self.server.close()
