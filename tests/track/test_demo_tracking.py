"""Tracking on the bundled demo clip against its ground truth (demo.json)."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import numpy as np
import pytest

from zeke.camera import open_source
from zeke.resources import DEMO_CLIP, DEMO_TRUTH
from zeke.track.tracker import Tracker, iou_matrix
from zeke.vision.pipeline import FacePipeline

MAX_LABEL_CHANGES_PER_TRACK = 1  # the demo's faces are photos: any change is flicker


@pytest.fixture(scope="module")
def demo_run():
    truth = json.loads(DEMO_TRUTH.read_text())
    pipeline = FacePipeline.create(detector="short")
    tracker = Tracker(pipeline.labels)
    source = open_source(str(DEMO_CLIP), pace=False, loop=False)
    actor_tracks: dict[int, set[int]] = defaultdict(set)
    track_actors: dict[int, set[int]] = defaultdict(set)
    events = []
    fps = truth["fps"]
    try:
        while (frame := source.read()) is not None:
            result = pipeline.process(frame.image)
            boxes = np.array([f.box for f in result.faces], np.float32).reshape(-1, 4)
            probs = np.array([list(f.emotions.values()) for f in result.faces], np.float32)
            scores = np.array([f.score for f in result.faces], np.float32)
            events += tracker.update(
                boxes,
                probs if len(boxes) else None,
                scores,
                frame.index / fps,
                time.time(),
                frame.index,
            )
            gt = [
                a
                for a in truth["per_frame"][frame.index]
                if a["visible"] >= 0.95 and a["occluded"] < 0.2
            ]
            visible = tracker.visible
            if not gt or not visible:
                continue
            ious = iou_matrix(
                np.array([a["box"] for a in gt], np.float32), np.stack([t.box for t in visible])
            )
            for i, actor in enumerate(gt):
                j = int(np.argmax(ious[i]))
                if ious[i, j] >= 0.4:
                    actor_tracks[actor["actor"]].add(visible[j].id)
                    track_actors[visible[j].id].add(actor["actor"])
    finally:
        source.close()
    events += tracker.close(time.time())
    return truth, actor_tracks, track_actors, events


def test_each_face_keeps_one_id_while_visible(demo_run):
    truth, actor_tracks, track_actors, _ = demo_run
    assert set(actor_tracks) == {a["id"] for a in truth["actors"]}, "every face was tracked"
    for actor, ids in actor_tracks.items():
        assert len(ids) == 1, f"face {actor} had track IDs {sorted(ids)}"
    for track, actors in track_actors.items():
        assert len(actors) == 1, f"track {track} jumped between faces {sorted(actors)}"


def test_label_flicker_is_bounded(demo_run):
    _, actor_tracks, _, events = demo_run
    tracked = {next(iter(ids)) for ids in actor_tracks.values()}
    changes = defaultdict(int)
    for e in events:
        if e.kind == "change":
            changes[e.track_id] += 1
    print("label changes per track:", dict(changes))
    assert all(changes[t] <= MAX_LABEL_CHANGES_PER_TRACK for t in tracked)
    enters = [e for e in events if e.kind == "enter"]
    leaves = [e for e in events if e.kind == "leave"]
    assert len(enters) == len(leaves)
