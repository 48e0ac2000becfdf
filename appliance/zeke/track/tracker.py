"""Stable face IDs across frames, and the events they produce.

Detections are associated to tracks greedily by IoU (then by centre distance, for fast
moves), tracks survive short misses, and a track is announced only after it has been seen
on a few frames, so a one-frame false positive never becomes an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zeke.events import EmotionEvent
from zeke.track.smoothing import EmotionSmoother
from zeke.vision.detections import iou_matrix


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Centre distance in units of the track box's size (scale-free)."""
    ca = (a[:, None, :2] + a[:, None, 2:]) / 2
    cb = (b[None, :, :2] + b[None, :, 2:]) / 2
    size = np.maximum(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1])[:, None]
    return np.linalg.norm(ca - cb, axis=-1) / np.maximum(size, 1.0)


@dataclass
class Track:
    id: int
    box: np.ndarray
    first_seen: float
    last_seen: float
    smoother: EmotionSmoother
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    last_update_event: float = 0.0
    score: float = 0.0
    history: list[str] = field(default_factory=list)

    @property
    def dwell(self) -> float:
        return self.last_seen - self.first_seen


@dataclass
class TrackerConfig:
    iou_threshold: float = 0.25
    max_centre_distance: float = 1.0
    min_hits: int = 2
    max_missed_s: float = 0.6
    box_smoothing: float = 0.7
    update_every_s: float = 1.0


class Tracker:
    """Turns per-frame faces into tracks with stable IDs and emits EmotionEvents."""

    def __init__(
        self, labels: tuple[str, ...], config: TrackerConfig | None = None, device: str = ""
    ):
        self.labels = labels
        self.config = config or TrackerConfig()
        self.device = device
        self.tracks: list[Track] = []
        self._next_id = 1
        self._seq = 0

    def _event(self, kind: str, track: Track, now_wall: float, frame_index: int) -> EmotionEvent:
        self._seq += 1
        probs = track.smoother.probs
        return EmotionEvent(
            seq=self._seq,
            kind=kind,
            track_id=track.id,
            emotion=track.smoother.label or "neutral",
            score=track.smoother.score,
            box=tuple(float(v) for v in track.box),
            ts=now_wall,
            dwell_s=track.dwell,
            frame_index=frame_index,
            device=self.device,
            emotions=(
                {k: float(v) for k, v in zip(self.labels, probs)} if probs is not None else {}
            ),
        )

    def _associate(self, boxes: np.ndarray) -> list[tuple[int, int]]:
        if not self.tracks or len(boxes) == 0:
            return []
        track_boxes = np.stack([t.box for t in self.tracks])
        ious = iou_matrix(track_boxes, boxes)
        dist = centre_distance(track_boxes, boxes)
        # one cost: prefer overlap, fall back on nearness
        score = np.where(
            ious >= self.config.iou_threshold,
            1.0 + ious,
            np.where(dist <= self.config.max_centre_distance, 1.0 - dist, -1.0),
        )
        pairs = []
        while True:
            t, d = np.unravel_index(int(np.argmax(score)), score.shape)
            if score[t, d] <= 0:
                break
            pairs.append((int(t), int(d)))
            score[t, :] = -1
            score[:, d] = -1
        return pairs

    def update(
        self,
        boxes: np.ndarray,
        probs: np.ndarray | None,
        scores: np.ndarray,
        now: float,
        now_wall: float,
        frame_index: int = 0,
    ) -> list[EmotionEvent]:
        """Fold in one frame's faces (boxes, emotion probabilities); return new events."""
        cfg = self.config
        events: list[EmotionEvent] = []
        pairs = self._associate(boxes)
        matched_tracks = {t for t, _ in pairs}
        matched_dets = {d for _, d in pairs}
        for t_index, d_index in pairs:
            track = self.tracks[t_index]
            track.box += cfg.box_smoothing * (boxes[d_index] - track.box)
            track.last_seen = now
            track.hits += 1
            track.misses = 0
            track.score = float(scores[d_index])
            changed = probs is not None and track.smoother.update(probs[d_index])
            if not track.confirmed and track.hits >= cfg.min_hits:
                track.confirmed = True
                track.last_update_event = now
                events.append(self._event("enter", track, now_wall, frame_index))
            elif track.confirmed and changed:
                track.last_update_event = now
                events.append(self._event("change", track, now_wall, frame_index))
            elif track.confirmed and now - track.last_update_event >= cfg.update_every_s:
                track.last_update_event = now
                events.append(self._event("update", track, now_wall, frame_index))
            if changed:
                track.history.append(track.smoother.label or "")
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.misses += 1
        for d_index in range(len(boxes)):
            if d_index in matched_dets:
                continue
            smoother = EmotionSmoother(self.labels)
            if probs is not None:
                smoother.update(probs[d_index])
            track = Track(
                id=self._next_id,
                box=boxes[d_index].astype(np.float32).copy(),
                first_seen=now,
                last_seen=now,
                smoother=smoother,
                score=float(scores[d_index]),
            )
            if smoother.label:
                track.history.append(smoother.label)
            self._next_id += 1
            self.tracks.append(track)
            if cfg.min_hits <= 1:
                track.confirmed = True
                events.append(self._event("enter", track, now_wall, frame_index))
        alive = []
        for track in self.tracks:
            if now - track.last_seen > cfg.max_missed_s:
                if track.confirmed:
                    events.append(self._event("leave", track, now_wall, frame_index))
            else:
                alive.append(track)
        self.tracks = alive
        return events

    def close(self, now_wall: float, frame_index: int = 0) -> list[EmotionEvent]:
        """End every confirmed track (the stream ended): their ``leave`` events."""
        events = [
            self._event("leave", t, now_wall, frame_index) for t in self.tracks if t.confirmed
        ]
        self.tracks = []
        return events

    @property
    def visible(self) -> list[Track]:
        """Confirmed tracks seen on the latest frame or recently."""
        return [t for t in self.tracks if t.confirmed]
