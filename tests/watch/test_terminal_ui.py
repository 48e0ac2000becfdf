"""``zeke watch --demo`` in a real terminal (tmux): the screen shows faces, emotions, speed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _wait_for(session: str, predicate, timeout: float = 45) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if predicate(screen):
            return screen
        time.sleep(0.3)
    raise AssertionError(f"screen never matched; last screen:\n{screen}")


def test_watch_demo_screen_and_q_quits(tmp_path):
    session = f"zeke-test-{time.monotonic_ns()}"
    status = tmp_path / "status"
    command = (
        f"env -u COLUMNS -u LINES {sys.executable} -m zeke watch --demo --no-events-socket; "
        f"echo $? > {status}; sleep 60"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "42", command)
    _tmux("resize-window", "-t", session, "-x", "140", "-y", "42")
    try:
        screen = _wait_for(
            session,
            lambda s: "faces (" in s and any(e in s for e in ("happy", "neutral")) and "FPS" in s,
        )
        assert "zeke watch" in screen and "detector short on cpu" in screen
        assert "latency ms" in screen and "p95" in screen and "detect" in screen
        assert "emotions, last minute" in screen
        assert "board" in screen and "CPU" in screen
        _tmux("send-keys", "-t", session, "p")
        _wait_for(session, lambda s: "PAUSED" in s, timeout=10)
        _tmux("send-keys", "-t", session, "p")
        _tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 20
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
