"""End to end: event socket -> `zeke mesh run` -> `zeke gateway` -> a pty read as the MCU would.

Real processes, TCP on loopback, mDNS on loopback only, a pty for the serial line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from conftest import Mesh, Proc, unique, wait_until, zeke_cmd

from zeke.events import EMOTIONS, EmotionEvent
from zeke.mesh import protocol as p


def received_events(mesh: Mesh) -> list[p.Event]:
    """Every EVT line that reached the MCU, each checked with the pairing key."""
    out = []
    for raw in mesh.sim.event_lines():
        parsed = p.check(raw, mesh.key, p.APP)  # raises on a bad tag
        assert isinstance(parsed.message, p.Event)
        out.append(parsed.message)
    return out


def assert_matches(events: list[p.Event], published: list) -> None:  # type: ignore[type-arg]
    assert len(events) == len(published)
    for got, sent in zip(events, published):
        assert (got.kind, got.track, got.emotion) == (sent.kind, sent.track_id, sent.emotion)
        assert got.score == round(sent.score * 1000)
        assert got.ts == round(sent.ts * 1000)


def test_every_event_arrives_once_in_order_with_valid_tags(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh()
    published = mesh.source.emit(300)
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) >= 300, 60), mesh.run.stderr()
    time.sleep(0.5)  # anything extra (a duplicate) would show up now
    events = received_events(mesh)
    assert_matches(events, published)
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + 300))
    # The MCU shows them: nothing it received was dropped as a duplicate or forged.
    assert len(mesh.sim.shown) == 300
    assert mesh.sim.state.counters.dropped["duplicate"] == 0
    assert mesh.sim.state.counters.dropped["tag"] == 0
    assert wait_until(lambda: mesh.link().get("acked") == seqs[-1], 30)
    assert mesh.link()["queued"] == 0


def test_zeke_watch_demo_events_reach_the_mcu_once_in_order(  # type: ignore[no-untyped-def]
    start_mesh, mesh_env, tmp_path
) -> None:
    """The whole chain: ``zeke watch --demo --frames N`` -> events socket -> ``zeke mesh run``
    -> ``zeke gateway`` -> the pty, read as the node MCU reads it."""
    sock = tmp_path / "watch" / "events.sock"
    watch = Proc(
        zeke_cmd("watch", "--demo", "--frames", "300", "--json", "--events-socket", str(sock)),
        mesh_env,
        tmp_path,
        "watch",
    ).start()
    try:
        assert wait_until(lambda: sock.exists() or not watch.alive(), 60), watch.stderr()
        mesh: Mesh = start_mesh(events_socket=sock)
        assert watch.proc is not None
        assert watch.proc.wait(timeout=120) == 0, watch.stderr()
    finally:
        watch.stop()
    published = [EmotionEvent.from_json(line) for line in watch.stdout().splitlines() if line]
    assert len(published) >= 10, watch.stdout()  # the demo clip has faces all along
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) >= len(published), 60), (
        f"{len(mesh.sim.event_lines())} of {len(published)}: {mesh.status()}"
    )
    time.sleep(0.5)
    events = received_events(mesh)
    assert_matches(events, published)
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(published)))
    assert {e.emotion for e in events} <= set(EMOTIONS)
    assert mesh.sim.state.counters.dropped["tag"] == 0
    assert mesh.status()["events_in"] == len(published)


def test_node_commands_come_back_and_bad_tags_are_dropped(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh()
    mesh.source.emit(5, interval_s=0)
    assert mesh.sim.wait_for(lambda s: len(s.shown) == 5, 60)
    shown_track = mesh.sim.state.shown.track if mesh.sim.state.shown else 0
    mesh.sim.press("yes")
    forged = bytearray(mesh.sim.state.command("no"))
    forged[-3] = ord("0") if forged[-3] != ord("0") else ord("1")  # break the tag
    mesh.sim.write(bytes(forged))
    mesh.sim.press("capture")

    def commands() -> list[dict]:
        return [json.loads(line) for line in mesh.run.stdout().splitlines() if line.strip()]

    assert wait_until(lambda: len(commands()) >= 2, 30), mesh.run.stderr()
    time.sleep(0.5)
    got = commands()
    assert [c["command"] for c in got] == ["yes", "capture"]
    assert got[0] == {
        **got[0],
        "type": "command",
        "gateway": mesh.gateway.name,
        "node": "ring-1",
        "track_id": shown_track,
        "seq": 1,
    }
    # The forged command was counted where it was caught: at the gateway.
    assert wait_until(lambda: mesh.gateway.status()["mcu"]["lines"]["tag"] == 1, 10)
    assert mesh.gateway.status()["commands_relayed"] == 2


def test_gateway_killed_mid_stream_loses_nothing_and_duplicates_nothing(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh(queue_size=1000)
    total = 600
    publisher = threading.Thread(target=mesh.source.emit, args=(total, 0.004))
    publisher.start()
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) >= 100, 60)
    mesh.gateway.kill()  # SIGKILL: no goodbye, no flush, no ACK for what is in flight
    killed_at = len(mesh.sim.event_lines())
    time.sleep(1.0)
    mesh.gateway.start()
    publisher.join()
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) >= total, 90), (
        f"{len(mesh.sim.event_lines())} of {total}: {mesh.link()}"
    )
    time.sleep(1.0)
    events = received_events(mesh)
    assert killed_at < total
    assert_matches(events, mesh.source.published)
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)) == list(range(seqs[0], seqs[0] + total))
    link = mesh.link()
    assert link["connects"] >= 2 and link["dropped_oldest"] == 0
    assert mesh.sim.state.counters.dropped["duplicate"] == 0


def test_beyond_the_queue_bound_the_oldest_are_dropped_and_counted(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh(queue_size=50)
    mesh.source.emit(20, interval_s=0)
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) == 20, 60)
    mesh.gateway.kill()
    assert wait_until(lambda: mesh.link().get("state") != "connected", 60)
    away = mesh.source.emit(200, interval_s=0.001)
    assert wait_until(lambda: mesh.status().get("events_in") == 220, 30)
    mesh.gateway.start()
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) >= 70, 90), mesh.link()
    time.sleep(1.0)
    events = received_events(mesh)
    assert len(events) == 70  # the first 20, then the newest 50 of the 200
    assert_matches(events[20:], away[-50:])
    assert mesh.link()["dropped_oldest"] == 150


def test_doctor_reports_the_links_of_the_running_forwarder(start_mesh, mesh_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh()
    # Where zeke doctor looks: the default pairings under $ZEKE_STATE_DIR, the status file.
    default_pairings = Path(mesh_env["ZEKE_STATE_DIR"]) / "mesh" / "pairings.json"
    default_pairings.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(mesh.pairing_file, default_pairings)
    env = {
        **mesh_env,
        "ZEKE_MESH_STATUS": str(mesh.status_file),
        "ZEKE_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")

    def doctor_mesh() -> dict:
        done = subprocess.run(
            zeke_cmd("doctor", "--json"), env=env, capture_output=True, text=True, timeout=120
        )
        report = json.loads(done.stdout)
        return next(check for check in report["checks"] if check["id"] == "mesh")

    healthy = doctor_mesh()
    assert healthy["status"] == "pass", healthy
    assert healthy["detail"] == f"{mesh.gateway.name} connected"

    mesh.gateway.kill()
    assert wait_until(lambda: mesh.link().get("state") != "connected", 60)
    mesh.source.emit(3, interval_s=0)
    assert wait_until(lambda: mesh.link().get("queued") == 3, 30)
    away = doctor_mesh()
    assert away["status"] == "warn", away
    assert unique("gw-test") in away["detail"] and "3 queued" in away["detail"]
    assert f"is {mesh.gateway.name} powered and on this network?" in away["fix"]

    mesh.run.stop()
    stale = mesh.status_file.stat().st_mtime - 60
    os.utime(mesh.status_file, (stale, stale))
    stopped = doctor_mesh()
    assert stopped["status"] == "warn" and "stopped updating" in stopped["detail"]
    assert "zeke-mesh.service" in stopped["fix"]
