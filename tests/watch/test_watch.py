"""``zeke watch`` end to end: JSON events, the event socket, bounded runs, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from zeke.events import EMOTIONS, read_events

EVENT_KEYS = {
    "seq", "kind", "track_id", "emotion", "score", "box", "ts", "dwell_s", "frame_index",
    "device", "emotions",
}  # fmt: skip


def test_json_events_and_summary(zeke_cli, walking_clip):
    proc = zeke_cli(
        "watch", "--camera", walking_clip, "--json", "--no-pace", "--no-events-socket", "--summary"
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events, "no events"
    assert all(set(e) == EVENT_KEYS for e in events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "enter" and kinds[-1] == "leave" and kinds.count("enter") == 1
    assert {e["track_id"] for e in events} == {events[0]["track_id"]}
    assert all(e["emotion"] == "happy" for e in events)
    assert list(events[0]["emotions"]) == list(EMOTIONS)
    # the face left at frame 120 of 150; "leave" comes within the miss tolerance after it
    assert 120 <= events[-1]["frame_index"] <= 135
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["frames"] == 150 and summary["dropped"] == 0
    assert summary["events"] == len(events)
    assert set(summary["latency_ms"]) == {"queue", "detect", "classify", "track", "total"}


def test_frames_bound(zeke_cli, walking_clip):
    proc = zeke_cli(
        "watch", "--camera", walking_clip, "--frames", "20", "--no-pace", "--json",
        "--no-events-socket", "--summary",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1])["frames"] == 20


def test_plain_lines_when_not_a_terminal(zeke_cli, walking_clip):
    proc = zeke_cli("watch", "--camera", walking_clip, "--frames", "30", "--no-events-socket")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("frames 30 fps") and "latency p50" in last


def test_events_reach_a_local_socket_reader(tmp_path, walking_clip):
    sock = tmp_path / "events.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zeke", "watch", "--camera", walking_clip, "--loop",
         "--duration", "20", "--events-socket", str(sock), "--no-pace"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        received = []
        for event in read_events(sock, timeout=20):
            received.append(event)
            if len(received) >= 5:
                break
        assert len(received) == 5
        assert all(e.emotion == "happy" and len(e.box) == 4 for e in received)
        seqs = [e.seq for e in received]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert not sock.exists()  # removed on a clean stop


def test_missing_camera_file_is_one_clear_error(zeke_cli, tmp_path):
    proc = zeke_cli("watch", "--camera", str(tmp_path / "nope.mp4"), "--json", "--frames", "5")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert any(
        line.startswith("error:") and "nope.mp4" in line for line in proc.stderr.splitlines()
    )


def test_bad_min_score_is_refused_before_the_camera_opens(zeke_cli, walking_clip):
    proc = zeke_cli("watch", "--camera", walking_clip, "--min-score", "2")
    assert proc.returncode == 2 and "--min-score" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_exits_cleanly(tmp_path, walking_clip):
    proc = subprocess.Popen(
        [sys.executable, "-m", "zeke", "watch", "--camera", walking_clip, "--loop", "--json",
         "--no-events-socket"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    first = proc.stdout.readline()  # wait for the first event
    assert json.loads(first)["kind"] == "enter"
    proc.terminate()
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
