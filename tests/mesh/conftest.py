"""Fixtures for the mesh tests: real processes, zeroconf on loopback only, pty serial lines.

Every zeroconf instance and every CLI call here is pinned to 127.0.0.1, so no test sends a
packet to a non-loopback address.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from zeke.events import EMOTIONS, EmotionEvent, EventServer
from zeke.mesh.nodesim import NodeSimulator

LOOPBACK = ["--interface", "127.0.0.1"]
#: Names on loopback multicast are shared by everything on this machine: each test run gets
#: its own suffix, so two runs (or a real gateway nearby) never see each other's gateways.
RUN = secrets.token_hex(3)


def unique(name: str) -> str:
    """``name`` for this run only (the same string every time within one run)."""
    return f"{name}-{RUN}"


def zeke_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "zeke", *args]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture
def mesh_env(tmp_path: Path) -> dict[str, str]:
    """Environment for zeke subprocesses: private state and runtime directories."""
    env = dict(os.environ)
    env["ZEKE_STATE_DIR"] = str(tmp_path / "state")
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("ZEKE_EVENTS_SOCKET", None)
    return env


class Proc:
    """A zeke subprocess with its output in files (never a full pipe that blocks it)."""

    def __init__(self, args: list[str], env: dict[str, str], log_dir: Path, label: str):
        self.args = args
        self.env = env
        self.out_path = log_dir / f"{label}.out"
        self.err_path = log_dir / f"{label}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        out = open(self.out_path, "ab")  # noqa: SIM115 - owned by the process
        err = open(self.err_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, stdout=out, stderr=err, env=self.env)
        out.close()
        err.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


@dataclass
class GatewayProc:
    """A `zeke gateway` on a pty, advertised on loopback only."""

    name: str
    serial: str
    env: dict[str, str]
    dir: Path
    ttl: int = 120
    proc: Proc | None = None
    runs: int = 0

    @property
    def status_file(self) -> Path:
        return self.dir / f"{self.name}.status.json"

    @property
    def state_dir(self) -> Path:
        return self.dir / f"{self.name}.state"

    def key(self) -> str:
        out = subprocess.run(
            zeke_cmd(
                "gateway", "--name", self.name, "--state-dir", str(self.state_dir), "--show-key"
            ),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return out.strip().rsplit(" ", 1)[-1]

    def start(self, wait: bool = True) -> GatewayProc:
        with contextlib.suppress(FileNotFoundError):
            self.status_file.unlink()
        self.runs += 1
        args = zeke_cmd(
            "gateway",
            "--serial",
            self.serial,
            "--name",
            self.name,
            *LOOPBACK,
            "--state-dir",
            str(self.state_dir),
            "--status-file",
            str(self.status_file),
            "--ttl",
            str(self.ttl),
            "-v",
        )
        self.proc = Proc(args, self.env, self.dir, f"{self.name}.{self.runs}").start()
        if wait:
            ok = wait_until(lambda: self.status_file.exists() or not self.proc.alive(), 60)
            assert ok and self.proc.alive(), f"gateway did not start:\n{self.proc.stderr()}"
        return self

    def status(self) -> dict:
        return read_json(self.status_file)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill(signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def node_sim() -> Iterator[NodeSimulator]:
    """A keyless node MCU on a pty: the gateway provisions it on first contact."""
    with NodeSimulator(key=None, node_id="ring-1") as sim:
        yield sim


@pytest.fixture
def gateways(mesh_env: dict[str, str], tmp_path: Path) -> Iterator[list[GatewayProc]]:
    started: list[GatewayProc] = []
    yield started
    for gw in started:
        gw.stop()


@pytest.fixture
def start_gateway(gateways: list[GatewayProc], mesh_env: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    def start(name: str, serial: str, ttl: int = 120, wait: bool = True) -> GatewayProc:
        gw = GatewayProc(name, serial, mesh_env, tmp_path, ttl=ttl)
        gateways.append(gw)
        return gw.start(wait=wait)

    return start


def demo_events(count: int, start_seq: int = 1) -> list[EmotionEvent]:
    """A plausible stream: faces enter, change emotion, update and leave."""
    rng = random.Random(count * 7919 + start_seq)
    events: list[EmotionEvent] = []
    live: dict[int, str] = {}
    next_track = 1
    for i in range(count):
        seq = start_seq + i
        if not live or (len(live) < 3 and rng.random() < 0.1):
            track, kind, emotion = next_track, "enter", rng.choice(EMOTIONS)
            next_track += 1
        else:
            track = rng.choice(sorted(live))
            roll = rng.random()
            if roll < 0.05:
                kind, emotion = "leave", live[track]
            elif roll < 0.25:
                kind, emotion = "change", rng.choice(EMOTIONS)
            else:
                kind, emotion = "update", live[track]
        if kind == "leave":
            live.pop(track)
        else:
            live[track] = emotion
        score = round(rng.uniform(0.3, 1.0), 4)
        x = rng.uniform(0, 500)
        events.append(
            EmotionEvent(
                seq,
                kind,
                track,
                emotion,
                score,
                (x, 40.0, x + 90, 150.0),
                time.time(),
                frame_index=seq,
                device="test",
            )
        )
    return events


@dataclass
class EventSource:
    """The appliance's event socket, fed by the test (a real ``zeke.events.EventServer``).

    ``emit(n)`` produces n events and returns them as published: exact control over
    timing and volume for the delivery tests. The end-to-end test from a real
    ``zeke watch --demo`` uses the pipeline's own socket instead.
    """

    path: Path
    server: EventServer
    published: list[EmotionEvent] = field(default_factory=list)

    def wait_for_reader(self, timeout: float = 60.0) -> None:
        assert wait_until(lambda: self.server.reader_count > 0, timeout), "no reader connected"

    def emit(self, count: int, interval_s: float = 0.002) -> list[EmotionEvent]:
        events = demo_events(count, start_seq=len(self.published) + 1)
        for event in events:
            event = replace(event, ts=time.time())
            self.server.publish(event)
            self.published.append(event)
            if interval_s:
                time.sleep(interval_s)
        return self.published[-count:]


@pytest.fixture
def event_source(tmp_path: Path) -> Iterator[EventSource]:
    path = tmp_path / "run" / "zeke" / "events.sock"
    server = EventServer(path).start()
    try:
        yield EventSource(path, server)
    finally:
        server.close()


@dataclass
class Mesh:
    """A paired gateway on a simulated node and a running ``zeke mesh run``."""

    sim: NodeSimulator
    gateway: GatewayProc
    run: Proc
    source: EventSource
    pairing_file: Path
    status_file: Path
    key: bytes

    def status(self) -> dict:
        return read_json(self.status_file)

    def link(self) -> dict:
        return self.status().get("gateways", {}).get(self.gateway.name, {})

    def wait_connected(self, timeout: float = 60.0) -> None:
        ok = wait_until(lambda: self.link().get("state") == "connected", timeout)
        assert ok, f"link never connected: {self.link()}\n{self.run.stderr()[-3000:]}"


def pair(
    gateway: GatewayProc, pairing_file: Path, key: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        zeke_cmd(
            "mesh",
            "pair",
            gateway.name,
            "--key",
            key or gateway.key(),
            "--json",
            "--pairing-file",
            str(pairing_file),
            *LOOPBACK,
        ),
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def start_mesh(start_gateway, event_source: EventSource, mesh_env, tmp_path: Path):  # type: ignore[no-untyped-def]
    procs: list[Proc] = []

    def start(
        name: str = unique("gw-test"), queue_size: int = 1000, events_socket: Path | None = None
    ) -> Mesh:
        """Gateway, pairing and ``zeke mesh run``; events from ``events_socket`` if given
        (a running ``zeke watch``), else from the test's own event server."""
        from zeke.mesh.auth import parse_key

        sim = NodeSimulator(key=None, node_id="ring-1").start()
        sims.append(sim)
        gateway = start_gateway(name, sim.path)
        key = gateway.key()
        pairing_file = tmp_path / "pairings.json"
        pair(gateway, pairing_file, key)
        status_file = tmp_path / "mesh-run.json"
        run = Proc(
            zeke_cmd(
                "mesh",
                "run",
                "--events-socket",
                str(events_socket or event_source.path),
                "--pairing-file",
                str(pairing_file),
                *LOOPBACK,
                "--queue-size",
                str(queue_size),
                "--status-file",
                str(status_file),
                "-v",
            ),
            mesh_env,
            tmp_path,
            "mesh-run",
        ).start()
        procs.append(run)
        mesh = Mesh(sim, gateway, run, event_source, pairing_file, status_file, parse_key(key))
        if events_socket is None:
            event_source.wait_for_reader()
        mesh.wait_connected()
        return mesh

    sims: list[NodeSimulator] = []
    yield start
    for proc in procs:
        proc.stop()
    for sim in sims:
        sim.close()
