#!/usr/bin/env python3
"""Frame-read cost per camera source kind: how many ms each ``read()`` costs on this machine.

Runs every source kind that can run without hardware: the demo clip (video decode), one
photo looped (image decode), a folder of JPEG frames, and an RTSP stream from the simulated
IP camera (``zeke.testing.rtsp_camera``, in a separate process so only the client's cost is
counted). V4L2 and CSI are measured only when a device exists (``--device``).

Wall time is what a reader waits per frame when frames are ready; CPU time is what the
reading process spends (decoding, copying), which is what competes with inference.

    python scripts/bench_camera.py [--frames 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from zeke.camera import open_source
from zeke.resources import DEMO_CLIP, sample_photos


def measure(uri: str, frames: int, warmup: int = 5, **options) -> dict:
    """Read ``warmup`` frames, then time ``frames`` more (wall and process CPU)."""
    source = open_source(uri, **options)
    try:
        for _ in range(warmup):
            source.read()
        count = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(frames):
            if source.read() is None:
                break
            count += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        info = source.describe()
    finally:
        source.close()
    return {
        "kind": info["kind"],
        "uri": info["uri"],
        "size": f"{info.get('width')}x{info.get('height')}",
        "frames": count,
        "wall_ms_per_frame": round(wall * 1e3 / max(count, 1), 3),
        "cpu_ms_per_frame": round(cpu * 1e3 / max(count, 1), 3),
    }


def frame_folder(folder: Path, count: int) -> Path:
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    for index in range(count):
        ok, image = cap.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"frame{index:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cap.release()
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rtsp_case(frames: int, fps: float) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "zeke.testing.rtsp_camera", "--port", str(port), "--fps", str(fps)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        server.stdout.readline()  # "streaming rtsp://..." once it listens
        url = f"rtsp://127.0.0.1:{port}/stream"
        result = measure(url, frames, warmup=10, open_timeout_s=15, read_timeout_s=15)
        result["note"] = f"MJPEG over RTP/TCP from the simulated camera at {fps:g} fps"
        return result
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames timed per source")
    parser.add_argument("--device", action="append", default=[], help="also a v4l2/csi URI")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = []
    results.append(
        {**measure(str(DEMO_CLIP), args.frames, pace=False, loop=True), "note": "mp4v decode"}
    )
    photo = sample_photos()[0]
    results.append(
        {**measure(str(photo), args.frames, loop=True), "note": f"JPEG decode ({photo.name})"}
    )
    with tempfile.TemporaryDirectory() as folder:
        frame_folder(Path(folder), 120)
        results.append(
            {**measure(folder, args.frames, loop=True), "note": "folder of 120 JPEG frames"}
        )
    results.append(rtsp_case(min(args.frames, 200), fps=120.0))
    for uri in args.device:
        results.append({**measure(uri, args.frames), "note": "device"})
    if args.json:
        print(json.dumps({"cpu": cv2.getNumberOfCPUs(), "results": results}, indent=2))
        return
    print(f"{'kind':7} {'size':9} {'frames':>6} {'wall ms':>8} {'cpu ms':>7}  note")
    for r in results:
        print(
            f"{r['kind']:7} {r['size']:9} {r['frames']:6d} {r['wall_ms_per_frame']:8.2f} "
            f"{r['cpu_ms_per_frame']:7.2f}  {r['note']}"
        )
    print("v4l2/csi: no device here; pass --device v4l2:///dev/video0 (or csi://0) on a board")


if __name__ == "__main__":
    main()
