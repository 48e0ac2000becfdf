#!/usr/bin/env python3
"""Throughput and time per phase of `flash-node` over the simulated Particle link.

Flashes a synthesised 256 KB application (the whole 0xB4000-0xF4000 user slot, so an Argon on
Device OS >= 3.1) to the pty device simulator with 1024- and 128-byte YMODEM blocks, several
runs each, and reports the median seconds per phase and the data-phase throughput.

    .venv/bin/python scripts/bench_flash.py [--runs 3] [--out out/bench_flash.json]

The link is a pseudo-terminal: it has no USB bandwidth limit and the simulator does not model
flash write time, so the data phase measures the host's YMODEM loop and one round trip per
block. The restart and re-enumeration phases are dominated by the device timers the simulator
models (1 s + 0.1 s before the reset, 1.5 s to re-enumerate, the 2 s `v` probe of a node that
boots into its app, 1.5 s to enter listening mode); ``--time-scale`` shrinks those.
Numbers only: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = (
    "validate",
    "discover",
    "open",
    "probe",
    "ready",
    "header",
    "data",
    "eot",
    "validation",
    "restart",
    "reenumerate",
)


def run_once(app: Path, block_size: int, args: argparse.Namespace, workdir: Path) -> dict:
    from zeke.particle.flash import flash_node
    from zeke.testing.particle_sim import ParticleSimulator

    with ParticleSimulator(
        args.platform,
        args.device_os,
        time_scale=args.time_scale,
        link_path=workdir / f"ttyACM-{block_size}",
    ) as sim:
        started = time.perf_counter()
        result = flash_node(app, block_size=block_size, comports=sim.comports)
        total = time.perf_counter() - started
        if sim.app_image != app.read_bytes():
            raise RuntimeError("the simulated device did not store the flashed image")
    return {
        "phases": {name: result.phases.get(name, 0.0) for name in PHASES},
        "total": total,
        "blocks": result.data_blocks,
        "throughput_kib_s": app.stat().st_size / result.phases["data"] / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 * 1024, help="application bytes")
    parser.add_argument("--platform", default="argon")
    parser.add_argument("--device-os", default="5.9.0")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--block-sizes", default="1024,128")
    parser.add_argument("--time-scale", type=float, default=1.0, help="device timer scale")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_flash.json")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from zeke.testing.particle_firmware import build_user_app

    index = 2 if args.size > 128 * 1024 else 1
    block_sizes = [int(b) for b in args.block_sizes.split(",")]
    report: dict = {
        "app_bytes": args.size,
        "platform": args.platform,
        "device_os": args.device_os,
        "runs": args.runs,
        "time_scale": args.time_scale,
        "host": {"python": sys.version.split()[0], "machine": platform.machine()},
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        app = workdir / "app.bin"
        app.write_bytes(build_user_app(args.platform, args.size, module_index=index))
        for block_size in block_sizes:
            runs = [run_once(app, block_size, args, workdir) for _ in range(args.runs)]
            report["results"][str(block_size)] = {
                "blocks": runs[0]["blocks"],
                "throughput_kib_s_median": statistics.median(r["throughput_kib_s"] for r in runs),
                "total_s_median": statistics.median(r["total"] for r in runs),
                "phases_s_median": {
                    name: statistics.median(r["phases"][name] for r in runs) for name in PHASES
                },
                "runs": runs,
            }

    title = f"flash-node, {args.size} B app, simulated {args.platform} {args.device_os}"
    table = Table(title=title)
    table.add_column("phase")
    for block_size in block_sizes:
        table.add_column(f"{block_size}-byte blocks (s)", justify="right")
    for name in PHASES:
        table.add_row(
            name,
            *(f"{report['results'][str(b)]['phases_s_median'][name]:.4f}" for b in block_sizes),
        )
    table.add_row(
        "total", *(f"{report['results'][str(b)]['total_s_median']:.3f}" for b in block_sizes)
    )
    table.add_row(
        "data throughput (KiB/s)",
        *(f"{report['results'][str(b)]['throughput_kib_s_median']:.0f}" for b in block_sizes),
    )
    table.add_row("blocks", *(str(report["results"][str(b)]["blocks"]) for b in block_sizes))
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
