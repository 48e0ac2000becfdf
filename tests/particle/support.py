"""Helpers shared by the Particle tests (timeouts, deadlines, CLI results)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from zeke.particle.flash import FlashTimeouts

SIM_SCALE = 0.05  # device: 5 s byte timeout -> 0.25 s, 60 s slow ACK -> 3 s
HOST_SCALE = 0.3  # host: 10 s block timeout -> 3 s, 90 s validation -> 27 s
HARD_TIMEOUT = 60.0  # no single flash may take longer: a hang fails the test, not the run


def host_timeouts() -> FlashTimeouts:
    return FlashTimeouts().scaled(HOST_SCALE)


def call_with_deadline(fn: Callable[[], object], timeout: float = HARD_TIMEOUT):
    """Run ``fn`` in a thread; fail the test if it has not returned after ``timeout``."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed back to the test
            box["error"] = err

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"hung: still running after {timeout} s"
    box["elapsed"] = time.monotonic() - started
    return box


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    elapsed: float
