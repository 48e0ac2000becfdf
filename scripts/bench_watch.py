#!/usr/bin/env python3
"""End-to-end numbers of `zeke watch` on the bundled demo clip.

    .venv/bin/python scripts/bench_watch.py [--frames 1000] [--soak 600] [--out FILE]

- throughput: `zeke watch --demo --json --no-pace --frames N --summary` with 1 and 2 threads
  (FPS, per-stage latency p50/p95 from the summary line);
- start to first event: wall time from process start to the first JSON event on stdout;
- soak: a paced run for --soak seconds, sampling the process's RSS every 10 s (flat means no leak).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "appliance" / "zeke" / "data" / "samples" / "astronaut.jpg"
WATCH = [sys.executable, "-m", "zeke", "watch", "--json", "--no-events-socket"]
ZEKE = [*WATCH, "--demo"]


def throughput(frames: int, threads: int) -> dict:
    proc = subprocess.run(
        [
            *ZEKE,
            "--no-pace",
            "--frames",
            str(frames),
            "--threads",
            str(threads),
            "--summary",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    summary["threads"] = threads
    return summary


def first_event(source: tuple[str, ...] = ("--demo",), runs: int = 3) -> list[float]:
    """Seconds from process start to the first event (a face must be seen on 2 frames)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        cmd = [*WATCH, "--duration", "20", *source]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        times.append(round(time.perf_counter() - t0, 3))
        proc.terminate()
        proc.wait()
    return times


def soak(seconds: int) -> list[tuple[int, float]]:
    proc = subprocess.Popen([*ZEKE, "--duration", str(seconds)], stdout=subprocess.DEVNULL)
    samples = []
    start = time.monotonic()
    try:
        while proc.poll() is None:
            try:
                rss_kb = int(
                    Path(f"/proc/{proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]
                )
            except (OSError, IndexError, ValueError):
                break
            samples.append((round(time.monotonic() - start), round(rss_kb / 1024, 1)))
            time.sleep(10)
    finally:
        proc.wait()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--soak", type=int, default=600, help="seconds; 0 skips the soak")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_watch.json")
    args = parser.parse_args()
    results = {
        "throughput": [throughput(args.frames, t) for t in (1, 2)],
        # the demo's first face walks in at frame 22 (1.47 s into the clip)
        "start_to_first_event_s": {
            "demo_clip": first_event(),
            "face_from_first_frame": first_event(("--camera", str(SAMPLE), "--loop")),
        },
    }
    for r in results["throughput"]:
        total = r["latency_ms"]["total"]
        print(f"threads {r['threads']}: {r['frames']} frames, {r['fps']:.0f} fps, "
              f"total latency p50 {total['p50']:.2f} ms p95 {total['p95']:.2f} ms")  # fmt: skip
    print(f"start to first event (s): {results['start_to_first_event_s']}")
    if args.soak:
        results["soak_rss_mb"] = soak(args.soak)
        rss = [mb for _, mb in results["soak_rss_mb"]]
        print(f"soak {args.soak} s: RSS first {rss[0]} MB, max {max(rss)} MB, last {rss[-1]} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
