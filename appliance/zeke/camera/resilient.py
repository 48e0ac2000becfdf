"""Keep a camera going: reopen a source that stops delivering, with backoff, and say so.

A USB camera gets unplugged, an IP camera reboots, a file is cut off while it plays. The
wrapper closes the broken source, reopens it after 0.5 s, 1 s, 2 s ... (capped), and reports
every change of state to the caller (``ok`` -> ``reconnecting`` -> ``ok``, or ``failed``
after ``max_attempts``). Frame indices keep increasing across reconnects.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from zeke.camera.base import Frame, Source, SourceLost
from zeke.camera.uri import redact
from zeke.errors import ConfigError, InputError, UsageError


class SourceState(str, Enum):
    OK = "ok"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


class SourceFailed(InputError):
    """A source stayed lost through every reconnect attempt."""


@dataclass(frozen=True)
class Backoff:
    """Delay before reopen attempt ``n`` (1-based): initial * factor**(n-1), capped."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))


@dataclass
class Health:
    """The state of a resilient source, as reported to the caller."""

    state: SourceState = SourceState.OK
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0  # reopen attempts in the current outage
    reconnects: int = 0  # outages recovered from
    last_error: str | None = None
    next_retry_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "for_s": round(time.monotonic() - self.since, 3),
            "attempts": self.attempts,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "next_retry_s": self.next_retry_s,
        }


#: errors a reopen cannot fix: a bad URI or option stays bad
_PERMANENT = (UsageError, ConfigError)


class ResilientSource(Source):
    """Wraps the source ``factory`` builds; reopens it whenever it stops delivering.

    ``on_state(health)`` is called on every state change and reopen attempt, from the
    thread that calls ``read``. ``max_attempts=None`` retries for ever (the appliance
    default). With ``wait_first_open`` a source that cannot be opened at all is retried too
    (a camera plugged in after boot); otherwise the first open fails fast with its error.
    """

    def __init__(
        self,
        factory: Callable[[], Source],
        *,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        wait_first_open: bool = False,
        on_state: Callable[[Health], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._factory = factory
        self._inner: Source | None = factory()
        super().__init__(self._inner.uri)
        self.kind = self._inner.kind
        self.live = self._inner.live
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.wait_first_open = wait_first_open
        self.on_state = on_state
        self._sleep = sleep
        self.health = Health()
        self._offset = 0
        self._last_index = -1
        self._last_describe: dict[str, Any] = {}

    @property
    def inner(self) -> Source | None:
        return self._inner

    def _notify(self) -> None:
        if self.on_state is not None:
            self.on_state(self.health)

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        if state is not self.health.state:
            self.health.state = state
            self.health.since = time.monotonic()
        if error is not None:
            self.health.last_error = error
        self._notify()

    def _open(self) -> None:
        if self._inner is None:
            self._inner = self._factory()
        try:
            self._inner.open()
        except _PERMANENT:
            raise
        except Exception as err:
            if not self.wait_first_open:
                raise
            self._lost(err)

    def _lost(self, err: BaseException) -> None:
        if self._inner is not None:
            with contextlib.suppress(Exception):
                self._last_describe = self._inner.describe()
            with contextlib.suppress(Exception):
                self._inner.close()
        self._inner = None
        self._offset = self._last_index + 1
        self.health.attempts = 0
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        self._set_state(SourceState.RECONNECTING, message)

    def _reconnect(self) -> None:
        while self._inner is None:
            attempt = self.health.attempts + 1
            if self.max_attempts is not None and attempt > self.max_attempts:
                self.health.next_retry_s = None
                self._set_state(SourceState.FAILED)
                raise SourceFailed(
                    f"{redact(self.uri)} stopped delivering and did not come back after "
                    f"{self.max_attempts} attempts (last error: {self.health.last_error})",
                    hint="check the camera, its cable or the network, then start again",
                )
            delay = self.backoff.delay(attempt)
            self.health.attempts = attempt
            self.health.next_retry_s = delay
            self._notify()
            self._sleep(delay)
            try:
                source = self._factory()
                source.open()
            except _PERMANENT:
                raise
            except Exception as err:
                self.health.last_error = getattr(err, "message", None) or str(err)
                continue
            self._inner = source
            self.health.next_retry_s = None

    def _read(self) -> Frame | None:
        while True:
            if self._inner is None:
                self._reconnect()
            assert self._inner is not None
            try:
                frame = self._inner.read()
            except _PERMANENT:
                raise
            except Exception as err:  # any failure of a read is a loss, never a crash
                self._lost(err)
                continue
            if frame is None:
                if self._inner.live:
                    self._lost(SourceLost(f"{redact(self.uri)} ended unexpectedly"))
                    continue
                return None
            if self.health.state is not SourceState.OK:
                self.health.reconnects += 1
                self.health.attempts = 0
                self._set_state(SourceState.OK)
            index = self._offset + frame.index
            self._last_index = index
            return Frame(frame.image, frame.ts, index)

    def _close(self) -> None:
        if self._inner is not None:
            self._inner.close()

    def describe(self) -> dict[str, Any]:
        inner = self._inner.describe() if self._inner is not None else dict(self._last_describe)
        inner.update({"uri": redact(self.uri), "health": self.health.to_dict()})
        return inner
