#!/usr/bin/env python3
"""Write the bundled sample photos ``zeke detect`` runs on when given no image.

Both photos are public domain and ship with libraries zeke's tests already use:

* ``astronaut.jpg``: ``skimage.data.astronaut()`` (Eileen Collins, NASA), 512x512.
* ``grace_hopper.jpg``: matplotlib's sample ``grace_hopper.jpg`` (US Navy photo).

They are re-encoded as JPEG quality 90 to keep each well under 200 KB.

    python scripts/make_samples.py            # (re)write appliance/zeke/data/samples/
    python scripts/make_samples.py --check    # exit 1 if they differ from a fresh encode

Byte equality under ``--check`` holds for the same OpenCV (libjpeg) build only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO / "appliance" / "zeke" / "data" / "samples"
JPEG_QUALITY = 90
MAX_BYTES = 200_000


def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def grace_hopper_rgb() -> np.ndarray:
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as stream:
        return np.asarray(matplotlib.image.imread(stream, format="jpg"))


SOURCES = {"astronaut.jpg": astronaut_rgb, "grace_hopper.jpg": grace_hopper_rgb}


def encode(rgb: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    for name, load in SOURCES.items():
        data = encode(load())
        if len(data) > MAX_BYTES:
            print(f"{name}: {len(data)} bytes exceeds {MAX_BYTES}", file=sys.stderr)
            status = 1
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                print(f"{path.name}: differs from a fresh encode", file=sys.stderr)
                status = 1
            continue
        path.write_bytes(data)
        print(f"wrote {name} ({len(data)} bytes)")
    return status


if __name__ == "__main__":
    sys.exit(main())
