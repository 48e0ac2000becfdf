"""sd_notify and the watchdog heartbeat, against real AF_UNIX datagram sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from zeke import sdnotify


@pytest.fixture
def notify_socket(tmp_path: Path):
    """A datagram socket standing in for systemd's /run/systemd/notify."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def drain(sock: socket.socket, quiet_s: float = 0.3) -> list[str]:
    """Every datagram that arrives until the socket stays quiet for ``quiet_s``."""
    out = []
    sock.settimeout(quiet_s)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        pass
    return out


def test_messages_reach_a_filesystem_socket(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": str(path)}
    assert sdnotify.ready(status="warming up\nmodels", env=env)
    assert sdnotify.status("watching v4l2:///dev/video0", env=env)
    assert sdnotify.extend_timeout(2.5, env=env)
    assert sdnotify.stopping(env=env)
    assert drain(sock) == [
        "READY=1\nSTATUS=warming up models",
        "STATUS=watching v4l2:///dev/video0",
        "EXTEND_TIMEOUT_USEC=2500000",
        "STOPPING=1",
    ]


def test_abstract_socket_name():
    name = f"zeke-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        env = {"NOTIFY_SOCKET": "@" + name}
        assert sdnotify.notify_address(env) == "\0" + name
        assert sdnotify.ready(env=env)
        assert sock.recv(4096) == b"READY=1"


def test_the_real_environment_is_read_by_default(notify_socket, monkeypatch):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert sdnotify.notify("STATUS=from the environment")
    assert sock.recv(4096) == b"STATUS=from the environment"


@pytest.mark.parametrize("value", [None, "", "relative/notify.sock", "@", "vsock:2:1234"])
def test_no_usable_socket_is_a_quiet_no_op(value):
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    assert sdnotify.notify_address(env) is None
    assert sdnotify.ready(env=env) is False
    assert sdnotify.stopping(env=env) is False
    assert sdnotify.Watchdog(env={**env, "WATCHDOG_USEC": "20000000"}).enabled is False


def test_a_supervisor_that_went_away_does_not_raise(tmp_path):
    env = {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}
    assert sdnotify.ready(env=env) is False
    dog = sdnotify.Watchdog(env={**env, "WATCHDOG_USEC": "1000000"})
    assert dog.enabled
    assert dog.kick() is False
    assert dog.failed == 1


@pytest.mark.parametrize(
    ("usec", "pid", "enabled"),
    [
        ("20000000", None, True),
        ("20000000", "self", True),
        ("20000000", "other", False),  # meant for the parent process
        ("0", None, False),
        ("-5", None, False),
        ("soon", None, False),
        (None, None, False),
    ],
)
def test_watchdog_enabled_only_for_this_process(notify_socket, usec, pid, enabled):
    path, _ = notify_socket
    env = {"NOTIFY_SOCKET": str(path)}
    if usec is not None:
        env["WATCHDOG_USEC"] = usec
    if pid == "self":
        env["WATCHDOG_PID"] = str(os.getpid())
    elif pid == "other":
        env["WATCHDOG_PID"] = str(os.getpid() + 1)
    dog = sdnotify.Watchdog(env=env)
    assert dog.enabled is enabled
    if enabled:
        assert dog.interval_s == int(usec) / 1e6


def test_kick_is_rate_limited_to_half_the_interval(notify_socket):
    path, sock = notify_socket
    now = [0.0]
    dog = sdnotify.Watchdog(
        env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "250000"}, clock=lambda: now[0]
    )
    sent_at = []
    # Binary-exact times: half the interval is 0.125 s.
    for t in [0.0, 0.03125, 0.0625, 0.1, 0.125, 0.1875, 0.25, 0.25, 0.5, 1.0]:
        now[0] = t
        if dog.kick():
            sent_at.append(t)
    assert sent_at == [0.0, 0.125, 0.25, 0.5, 1.0]
    assert drain(sock) == ["WATCHDOG=1"] * 5
    assert dog.sent == 5


def test_disabled_watchdog_costs_nothing_and_sends_nothing(notify_socket):
    _, sock = notify_socket
    dog = sdnotify.Watchdog(env={})
    assert repr(dog) == "Watchdog(disabled)"
    assert not any(dog.kick() for _ in range(1000))
    assert drain(sock, 0.1) == []


# A frame loop as the kiosk runs it: READY once, a kick per frame, then a stage hangs.
STALLING_LOOP = textwrap.dedent(
    """
    import sys, time
    from zeke import sdnotify

    frames, frame_s, stall_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    dog = sdnotify.Watchdog()
    assert dog.enabled, dog
    sdnotify.ready(status="watching")
    for _ in range(frames):
        time.sleep(frame_s)  # one frame's work
        dog.kick()
    sdnotify.status("stalled")  # marks the moment the loop stops kicking
    time.sleep(stall_s)  # a hung stage: the process lives on, the loop does not
    """
)


def test_a_stalled_loop_stops_the_heartbeat(notify_socket):
    path, sock = notify_socket
    interval_s = 0.4
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": str(int(interval_s * 1e6))}
    frames, frame_s, stall_s = 60, 0.02, 120
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLING_LOOP, str(frames), str(frame_s), str(stall_s)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        log: list[str] = []
        sock.settimeout(60)
        while not log or log[-1] != "STATUS=stalled":
            log.append(sock.recv(4096).decode())
        # Three watchdog intervals of silence while the process is still alive: systemd
        # would have declared the unit hung, killed it and started it again.
        after = drain(sock, quiet_s=3 * interval_s)
        assert proc.poll() is None, "the stalled process must still be running"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr

    assert log.count("READY=1\nSTATUS=watching") == 1
    beats = log.count("WATCHDOG=1")
    # 60 frames of >= 20 ms each keep the loop alive for >= 1.2 s: with one beat per 0.2 s
    # at most (the rate limit, tested exactly above), that is at least 3 beats.
    assert beats >= 3
    assert after == []
