#!/usr/bin/env python3
"""Benchmark the mesh path: event socket -> `zeke mesh run` -> `zeke gateway` -> serial line.

Everything is real except the MCU, which is the pty node simulator: TCP and mDNS on
loopback, the gateway and the forwarder as separate processes. It reports

- latency from ``EventServer.publish`` to the line read on the MCU's side of the pty, at a
  steady rate like the pipeline's (p50/p95/max), and
- throughput: events per second through one gateway for a burst, and
- latency from the camera frame to the serial line: a real ``zeke watch --demo`` feeds the
  chain, and each line's timestamp (the frame's capture time) is compared with when the line
  was read (``--watch-frames 0`` skips it).

Usage: scripts/bench_mesh.py [--events N] [--rate HZ] [--burst N] [--watch-frames N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zeke.events import EmotionEvent, EventServer
from zeke.mesh import protocol as p
from zeke.mesh.auth import parse_key
from zeke.mesh.nodesim import NodeSimulator

LOOPBACK = ["--interface", "127.0.0.1"]


def zeke(*args: str) -> list[str]:
    return [sys.executable, "-m", "zeke", *args]


def wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_event(seq: int) -> EmotionEvent:
    emotion = p.EMOTIONS[seq % len(p.EMOTIONS)]
    return EmotionEvent(seq, "update", 1 + seq % 3, emotion, 0.9, (0, 0, 10, 10), time.time())


def frame_to_line(
    frames: int,
    tmp: Path,
    env: dict[str, str],
    sim: NodeSimulator,
    key: bytes,
    server: EventServer,
) -> list[float]:
    """Run ``zeke watch --demo`` on the socket the forwarder reads; frame -> line, in ms.

    An event's timestamp is its frame's capture time and travels on the serial line in
    milliseconds, so each line read on the MCU's side says its own latency.
    """
    if frames <= 0:
        return []
    before = len(sim.event_lines())
    server.close()  # zeke watch serves this socket now, as on the appliance
    watch = subprocess.run(
        zeke(
            "watch", "--demo", "--frames", str(frames), "--json",
            "--events-socket", str(server.path),
        ),
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if watch.returncode != 0:
        raise SystemExit(f"zeke watch failed: {watch.stderr[-2000:]}")
    published = [line for line in watch.stdout.splitlines() if line.strip()]
    target = before + len(published)
    if not sim.wait_for(lambda s: len(s.event_lines()) >= target, 60):
        raise SystemExit(f"watch: {len(sim.event_lines()) - before} of {len(published)} arrived")
    with sim._lock:
        lines = [r for r in sim.received if r.raw.startswith(p.encode_head("EVT"))][before:]
    latencies = []
    for line in lines:
        event = p.check(line.raw, key, p.APP).message
        assert isinstance(event, p.Event)
        latencies.append(1000 * line.at - event.ts)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300, help="events for the latency run")
    parser.add_argument("--rate", type=float, default=30.0, help="events/s for the latency run")
    parser.add_argument("--burst", type=int, default=3000, help="events for the throughput run")
    parser.add_argument(
        "--watch-frames", type=int, default=450, help="frames of zeke watch --demo (0: skip)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="zeke-bench-mesh-"))
    env = dict(os.environ, ZEKE_STATE_DIR=str(tmp / "state"), XDG_RUNTIME_DIR=str(tmp / "run"))
    procs: list[subprocess.Popen[bytes]] = []
    sim = NodeSimulator(node_id="bench-node").start()
    server = EventServer(tmp / "events.sock").start()
    try:
        state = tmp / "gw-state"
        procs.append(
            subprocess.Popen(
                zeke(
                    "gateway",
                    "--serial",
                    sim.path,
                    "--name",
                    "bench-gw",
                    *LOOPBACK,
                    "--state-dir",
                    str(state),
                    "--status-file",
                    str(tmp / "gw.json"),
                ),
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        if not wait(lambda: (tmp / "gw.json").exists(), 60):
            raise SystemExit("the gateway did not start")
        key_text = (
            subprocess.run(
                zeke("gateway", "--name", "bench-gw", "--state-dir", str(state), "--show-key"),
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .rsplit(" ", 1)[-1]
        )
        key = parse_key(key_text)
        pairings = tmp / "pairings.json"
        subprocess.run(
            zeke(
                "mesh",
                "pair",
                "bench-gw",
                "--key",
                key_text,
                "--pairing-file",
                str(pairings),
                *LOOPBACK,
            ),
            env=env,
            check=True,
            capture_output=True,
        )
        procs.append(
            subprocess.Popen(
                zeke(
                    "mesh",
                    "run",
                    "--events-socket",
                    str(tmp / "events.sock"),
                    "--pairing-file",
                    str(pairings),
                    "--queue-size",
                    str(max(1000, args.burst)),
                    *LOOPBACK,
                    "--status-file",
                    str(tmp / "run.json"),
                ),
                env=env,
                stderr=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        )

        def link_state() -> str:
            try:
                doc = json.loads((tmp / "run.json").read_text())
            except (OSError, ValueError):
                return ""
            return str(doc.get("gateways", {}).get("bench-gw", {}).get("state", ""))

        if not wait(lambda: server.reader_count > 0 and link_state() == "connected", 60):
            raise SystemExit("zeke mesh run did not connect")

        # Latency at a steady rate.
        sent_at: dict[int, float] = {}
        period = 1.0 / args.rate
        next_at = time.monotonic()
        for i in range(args.events):
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))
            sent_at[i] = time.time()
            server.publish(make_event(i + 1))
        if not sim.wait_for(lambda s: len(s.event_lines()) >= args.events, 60):
            raise SystemExit(f"only {len(sim.event_lines())} of {args.events} events arrived")
        with sim._lock:
            arrivals = [r.at for r in sim.received if r.raw.startswith(p.encode_head("EVT"))]
        latency_ms = [1000 * (arrivals[i] - sent_at[i]) for i in range(args.events)]
        for raw in sim.event_lines():
            p.check(raw, key, p.APP)  # every line the MCU got carries a valid tag

        # Throughput: a burst as fast as the socket takes it.
        before = len(sim.event_lines())
        start_wall = time.time()
        for i in range(args.burst):
            server.publish(make_event(args.events + i + 1))
            if i % 200 == 199:
                time.sleep(0.001)  # let the reader drain rather than be dropped as too slow
        target = before + args.burst
        if not sim.wait_for(lambda s: len(s.event_lines()) >= target, 120):
            raise SystemExit(f"burst: only {len(sim.event_lines()) - before} arrived")
        with sim._lock:
            last = max(r.at for r in sim.received)
        elapsed = last - start_wall
        frame_ms = frame_to_line(args.watch_frames, tmp, env, sim, key, server)
        result = {
            "latency_events": args.events,
            "rate_hz": args.rate,
            "latency_ms": {
                "p50": round(statistics.median(latency_ms), 2),
                "p95": round(percentile(latency_ms, 0.95), 2),
                "max": round(max(latency_ms), 2),
            },
            "burst_events": args.burst,
            "burst_seconds": round(elapsed, 3),
            "events_per_second": round(args.burst / elapsed, 1),
            "dropped_readers": server.dropped_readers,
        }
        if frame_ms:
            result["frame_to_line_ms"] = {
                "events": len(frame_ms),
                "p50": round(statistics.median(frame_ms), 2),
                "p95": round(percentile(frame_ms, 0.95), 2),
                "max": round(max(frame_ms), 2),
            }
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.close()
        sim.close()
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(
            f"latency publish -> serial line, {args.events} events at {args.rate:g}/s: "
            f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms"
        )
        print(
            f"throughput through one gateway: {result['events_per_second']} events/s "
            f"({args.burst} events in {result['burst_seconds']} s)"
        )
        if "frame_to_line_ms" in result:
            lat = result["frame_to_line_ms"]
            print(
                f"latency camera frame -> serial line, zeke watch --demo, {lat['events']} "
                f"events: p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
