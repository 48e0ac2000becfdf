#!/usr/bin/env python3
"""Make the bundled demo clip ``appliance/zeke/data/demo.mp4`` and its ground truth ``demo.json``.

The clip stands in for a camera wherever there is none (``zeke watch --demo``, first boot,
tests): faces enter, move, linger and leave over a dim, blurred background, sometimes one,
sometimes two or three at once, sometimes none. Every face is a head-and-shoulders cut-out
of a public-domain photo, plain or mirrored, at different sizes:

* Eileen Collins, NASA portrait (``skimage.data.astronaut``): public domain (NASA)
* Grace Hopper, US Navy portrait (matplotlib's ``grace_hopper.jpg``): public domain (US Navy)
* background: ``skimage.data.rocket`` (a launch pad at dusk) blurred and dimmed: public
  domain (SpaceX)

The motion is scripted and the only randomness (sway phases) uses a fixed seed, so the
frames and the ground truth are the same on every run. ``demo.json`` holds, per frame, each
visible face's actor id, identity, box (x0, y0, x1, y1 in frame pixels, clipped to the frame)
and the visible fraction of the face, so tracking can be checked against stable ids.

Needs the ``test`` extra (scikit-image, matplotlib): ``pip install -e '.[test]'``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "appliance" / "zeke" / "data" / "demo.mp4"
WIDTH, HEIGHT, FPS, SECONDS, SEED = 640, 480, 15, 24, 20240501


@dataclass(frozen=True)
class Portrait:
    """A source photo and its face box (x0, y0, x1, y1) in its own pixels."""

    name: str
    image: np.ndarray  # BGR
    face: tuple[float, float, float, float]


@dataclass(frozen=True)
class Actor:
    """One appearance of a face: who, mirrored or not, and its path as keyframes.

    Keyframes are (second, face-centre x, face-centre y, face height px); between keyframes
    the motion eases in and out, and a gentle sway keeps a lingering face alive.
    """

    id: int
    identity: str
    mirrored: bool
    keys: tuple[tuple[float, float, float, float], ...]

    @property
    def start(self) -> float:
        return self.keys[0][0]

    @property
    def end(self) -> float:
        return self.keys[-1][0]


# Paths are in seconds and frame pixels; faces start and end outside the frame.
ACTORS = (
    Actor(1, "astronaut", False, ((1.0, -90, 250, 120), (3.0, 210, 240, 120), (7.0, 230, 235, 125),
                                  (9.5, -100, 250, 120))),
    Actor(2, "hopper", True, ((4.0, 820, 230, 160), (6.0, 470, 215, 160), (9.0, 480, 225, 165),
                              (11.5, 820, 260, 160))),
    Actor(3, "astronaut", True, ((13.0, -60, 100, 80), (16.0, 300, 95, 85), (19.0, 400, 100, 90),
                                 (22.0, 720, 110, 95))),
    Actor(4, "hopper", False, ((14.0, 230, 660, 175), (15.5, 230, 315, 175), (18.0, 250, 310, 180),
                               (19.5, 240, 680, 180))),
    Actor(5, "astronaut", False, ((15.5, 740, 300, 130), (17.0, 520, 300, 130),
                                  (18.5, 510, 305, 135), (20.5, 760, 310, 135))),
)  # fmt: skip


def load_portraits() -> dict[str, Portrait]:
    try:
        from matplotlib import cbook
        from skimage import data
    except ImportError:
        sys.exit("make_demo_clip needs scikit-image and matplotlib: pip install -e '.[test]'")
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return {
        "astronaut": Portrait("astronaut", astronaut, (176.0, 74.0, 276.0, 174.0)),
        "hopper": Portrait("hopper", hopper, (162.0, 128.0, 366.0, 334.0)),
    }


@dataclass(frozen=True)
class Cutout:
    """A head-and-shoulders cut-out with a soft alpha matte and its face box inside it."""

    bgr: np.ndarray  # float32
    alpha: np.ndarray  # float32, HxWx1 in 0..1
    face: tuple[float, float, float, float]


def make_cutout(portrait: Portrait, mirrored: bool) -> Cutout:
    """Cut head and shoulders out of a portrait: a head ellipse over a shoulders ellipse."""
    x0, y0, x1, y1 = portrait.face
    size = y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    img = portrait.image
    h, w = img.shape[:2]
    left, right = max(0, int(cx - 1.3 * size)), min(w, int(cx + 1.3 * size))
    top, bottom = max(0, int(y0 - 0.55 * size)), min(h, int(y1 + 0.95 * size))
    crop = img[top:bottom, left:right].astype(np.float32)
    ch, cw = crop.shape[:2]
    mask = np.zeros((ch, cw), np.float32)
    head = (int(cx - left), int(cy - top - 0.08 * size))
    cv2.ellipse(mask, head, (int(0.62 * size), int(0.85 * size)), 0, 0, 360, 1.0, -1)
    shoulders = (int(cx - left), int(bottom - top))
    cv2.ellipse(mask, shoulders, (int(1.25 * size), int(0.85 * size)), 0, 0, 360, 1.0, -1)
    neck_top = int(cy - top + 0.3 * size)
    cv2.rectangle(
        mask, (int(cx - left - 0.35 * size), neck_top), (int(cx - left + 0.35 * size), ch), 1.0, -1
    )
    feather = max(3, int(size * 0.08)) | 1
    mask = cv2.GaussianBlur(mask, (0, 0), feather / 2.0)
    # fade out towards the crop's sides and bottom: no straight edges, shoulders melt away
    side = max(4, int(0.15 * size))
    ramp_x = np.clip(np.minimum(np.arange(cw), np.arange(cw)[::-1]) / side, 0.0, 1.0)
    ramp_y = np.clip(np.arange(ch)[::-1] / (0.45 * size), 0.0, 1.0)
    mask *= ramp_x[None, :] * ramp_y[:, None]
    face = (x0 - left, y0 - top, x1 - left, y1 - top)
    if mirrored:
        crop, mask = crop[:, ::-1].copy(), mask[:, ::-1].copy()
        face = (cw - face[2], face[1], cw - face[0], face[3])
    return Cutout(crop, mask[:, :, None], face)


def make_background() -> np.ndarray:
    from skimage import data

    scene = cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)
    scale = max((WIDTH + 80) / scene.shape[1], (HEIGHT + 60) / scene.shape[0])
    big = cv2.resize(scene, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    big = cv2.GaussianBlur(big, (0, 0), 5.0)
    return (big.astype(np.float32) * 0.55 + 12.0).clip(0, 255)


def ease(u: float) -> float:
    return u * u * (3.0 - 2.0 * u)


def actor_pose(actor: Actor, t: float, phase: float) -> tuple[float, float, float] | None:
    """Face centre x, y and face height at time ``t``, or None when the actor is off stage."""
    keys = actor.keys
    if t < keys[0][0] or t > keys[-1][0]:
        return None
    for (t0, *a), (t1, *b) in itertools.pairwise(keys):
        if t0 <= t <= t1:
            u = ease((t - t0) / (t1 - t0))
            x, y, size = (a[i] + (b[i] - a[i]) * u for i in range(3))
            break
    sway = math.sin(2 * math.pi * 0.35 * t + phase)
    return x + 6.0 * sway, y + 3.0 * math.sin(2 * math.pi * 0.5 * t + 2 * phase), size


def paste(
    frame: np.ndarray, cover: np.ndarray, cut: Cutout, cx: float, cy: float, face_h: float
) -> list[float]:
    """Blend the cut-out so its face is centred at (cx, cy) with height ``face_h``.

    ``cover`` (HxW) accumulates the opacity pasted so far, so a face's occlusion by later
    pastes can be measured. Returns the face box in frame pixels (unclipped).
    """
    fx0, fy0, fx1, fy1 = cut.face
    scale = face_h / (fy1 - fy0)
    bgr = cv2.resize(cut.bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(cut.alpha, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_AREA)
    alpha = alpha[:, :, None] if alpha.ndim == 2 else alpha
    ox = cx - (fx0 + fx1) / 2 * scale
    oy = cy - (fy0 + fy1) / 2 * scale
    ix, iy = round(ox), round(oy)
    h, w = bgr.shape[:2]
    x0, y0 = max(ix, 0), max(iy, 0)
    x1, y1 = min(ix + w, frame.shape[1]), min(iy + h, frame.shape[0])
    if x1 > x0 and y1 > y0:
        src = bgr[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
        a = alpha[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
        region = frame[y0:y1, x0:x1]
        region *= 1.0 - a
        region += src * a
        np.maximum(cover[y0:y1, x0:x1], a[:, :, 0], out=cover[y0:y1, x0:x1])
    return [ix + fx0 * scale, iy + fy0 * scale, ix + fx1 * scale, iy + fy1 * scale]


def clip_box(box: list[float]) -> tuple[list[float], float]:
    x0, y0, x1, y1 = box
    cx0, cy0 = max(0.0, x0), max(0.0, y0)
    cx1, cy1 = min(float(WIDTH), x1), min(float(HEIGHT), y1)
    area = (x1 - x0) * (y1 - y0)
    visible = max(0.0, cx1 - cx0) * max(0.0, cy1 - cy0) / area if area > 0 else 0.0
    return [round(cx0, 1), round(cy0, 1), round(cx1, 1), round(cy1, 1)], round(visible, 3)


def render(out: Path, seconds: float) -> dict:
    portraits = load_portraits()
    cutouts = {
        (name, mirrored): make_cutout(p, mirrored)
        for name, p in portraits.items()
        for mirrored in (False, True)
    }
    rng = np.random.default_rng(SEED)
    phases = {actor.id: float(rng.uniform(0, 2 * math.pi)) for actor in ACTORS}
    background = make_background()
    n_frames = round(seconds * FPS)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        sys.exit(f"OpenCV cannot write mp4v video to {out}")
    truth: list[list[dict]] = []
    span_x = background.shape[1] - WIDTH
    span_y = background.shape[0] - HEIGHT
    for index in range(n_frames):
        t = index / FPS
        # a slow drift of the view, like a camera on a shelf that is not quite still
        dx = int(span_x / 2 + span_x / 2 * 0.8 * math.sin(2 * math.pi * t / seconds))
        dy = int(span_y / 2 + span_y / 2 * 0.6 * math.sin(2 * math.pi * t / (seconds * 0.7)))
        frame = background[dy : dy + HEIGHT, dx : dx + WIDTH].copy()
        frame *= 1.0 + 0.04 * math.sin(2 * math.pi * t / 9.0)
        on_stage = []
        for actor in ACTORS:
            pose = actor_pose(actor, t, phases[actor.id])
            if pose is not None:
                on_stage.append((pose[2], actor, pose))
        faces = []
        # smaller (farther) faces first, so nearer ones are drawn over them
        for _, actor, (cx, cy, size) in sorted(on_stage, key=lambda item: item[0]):
            cover = np.zeros((HEIGHT, WIDTH), np.float32)
            box = paste(frame, cover, cutouts[(actor.identity, actor.mirrored)], cx, cy, size)
            for earlier in faces:  # how much of each face drawn before is now covered
                x0, y0, x1, y1 = (round(v) for v in earlier["box"])
                if x1 > x0 and y1 > y0:
                    hidden = float(cover[y0:y1, x0:x1].mean())
                    earlier["occluded"] = round(max(earlier["occluded"], hidden), 3)
            clipped, visible = clip_box(box)
            if visible > 0:
                faces.append(
                    {
                        "actor": actor.id,
                        "identity": actor.identity,
                        "box": clipped,
                        "visible": visible,
                        "occluded": 0.0,
                    }
                )
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
        truth.append(sorted(faces, key=lambda f: f["actor"]))
    writer.release()
    on_stage_frames = {
        a.id: [i for i, faces in enumerate(truth) if any(f["actor"] == a.id for f in faces)]
        for a in ACTORS
    }
    return {
        "clip": out.name,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "frames": n_frames,
        "seed": SEED,
        "made_by": "scripts/make_demo_clip.py",
        "box_format": "x0, y0, x1, y1 in frame pixels, clipped to the frame",
        "visible": "fraction of the face box inside the frame",
        "occluded": "mean opacity of nearer cut-outs over the face box (0: not covered)",
        "sources": {
            "astronaut": "Eileen Collins, NASA portrait (skimage.data.astronaut), public domain",
            "hopper": "Grace Hopper, US Navy portrait (matplotlib grace_hopper.jpg), public domain",
            "background": "skimage.data.rocket, public domain (SpaceX), blurred and dimmed",
        },
        "actors": [
            {
                "id": a.id,
                "identity": a.identity,
                "mirrored": a.mirrored,
                "first_frame": on_stage_frames[a.id][0],
                "last_frame": on_stage_frames[a.id][-1],
            }
            for a in ACTORS
        ],
        "per_frame": truth,
    }


def check(out: Path, truth: dict) -> None:
    """Read the clip back with OpenCV and compare frame count and size with the truth."""
    cap = cv2.VideoCapture(str(out), cv2.CAP_FFMPEG)
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (HEIGHT, WIDTH, 3), frame.shape
        count += 1
    cap.release()
    if count != truth["frames"]:
        sys.exit(f"read back {count} frames from {out}, wrote {truth['frames']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .mp4")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="clip length")
    args = parser.parse_args()
    truth = render(args.out, args.seconds)
    truth_path = args.out.with_suffix(".json")
    truth_path.write_text(json.dumps(truth, separators=(",", ":")) + "\n")
    check(args.out, truth)
    counts = [len(f) for f in truth["per_frame"]]
    size_kb = args.out.stat().st_size / 1024
    print(
        f"{args.out}: {truth['frames']} frames, {WIDTH}x{HEIGHT} @ {FPS} fps, {size_kb:.0f} KiB; "
        f"frames with 0/1/2/3 faces: {[counts.count(n) for n in range(4)]}"
    )


if __name__ == "__main__":
    main()
