"""The event socket keeps what was published while nobody listened, within its bound."""

from __future__ import annotations

import socket
from pathlib import Path

from zeke.events import EmotionEvent, EventServer, read_events


def event(seq: int) -> EmotionEvent:
    return EmotionEvent(seq, "update", 1, "happy", 0.9, (0.0, 0.0, 10.0, 10.0), 1.0 + seq)


def test_events_before_the_first_reader_reach_it_first_and_in_order(tmp_path: Path) -> None:
    with EventServer(tmp_path / "e.sock", backlog=100) as server:
        for seq in range(1, 11):
            server.publish(event(seq))
        stream = read_events(server.path, timeout=10)
        first = [next(stream).seq for _ in range(10)]
        assert first == list(range(1, 11))
        assert _wait(lambda: server.reader_count == 1)
        server.publish(event(11))
        assert next(stream).seq == 11
        assert server.dropped_backlog == 0


def test_beyond_the_bound_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    with EventServer(tmp_path / "e.sock", backlog=5) as server:
        for seq in range(1, 13):
            server.publish(event(seq))
        stream = read_events(server.path, timeout=10)
        assert [next(stream).seq for _ in range(5)] == [8, 9, 10, 11, 12]
        assert server.dropped_backlog == 7


def test_without_a_backlog_nothing_is_kept(tmp_path: Path) -> None:
    with EventServer(tmp_path / "e.sock") as server:
        server.publish(event(1))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as reader:
            reader.settimeout(10)
            reader.connect(str(server.path))
            assert _wait(lambda: server.reader_count == 1)
            server.publish(event(2))
            line = reader.makefile("rb").readline()
        assert EmotionEvent.from_json(line).seq == 2


def _wait(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
