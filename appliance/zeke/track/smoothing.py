"""Per-track emotion smoothing with hysteresis, so labels do not flicker frame to frame."""

from __future__ import annotations

import numpy as np


class EmotionSmoother:
    """Exponential moving average of the class probabilities, plus a sticky label.

    The shown label changes only when another class leads the current one by ``margin`` in
    the smoothed probabilities for ``hold`` consecutive updates.
    """

    def __init__(
        self, labels: tuple[str, ...], alpha: float = 0.35, margin: float = 0.08, hold: int = 3
    ):
        self.labels = labels
        self.alpha = alpha
        self.margin = margin
        self.hold = hold
        self.probs: np.ndarray | None = None
        self.label_index: int | None = None
        self._challenger: int | None = None
        self._streak = 0

    @property
    def label(self) -> str | None:
        return None if self.label_index is None else self.labels[self.label_index]

    @property
    def score(self) -> float:
        if self.probs is None or self.label_index is None:
            return 0.0
        return float(self.probs[self.label_index])

    def update(self, probs: np.ndarray) -> bool:
        """Fold in one frame's probabilities; True when the shown label changed."""
        if self.probs is None:
            self.probs = probs.astype(np.float32).copy()
            self.label_index = int(np.argmax(self.probs))
            return True
        self.probs += self.alpha * (probs - self.probs)
        leader = int(np.argmax(self.probs))
        if leader == self.label_index:
            self._challenger, self._streak = None, 0
            return False
        lead = self.probs[leader] - self.probs[self.label_index]
        if lead < self.margin:
            self._challenger, self._streak = None, 0
            return False
        self._streak = self._streak + 1 if leader == self._challenger else 1
        self._challenger = leader
        if self._streak >= self.hold:
            self.label_index, self._challenger, self._streak = leader, None, 0
            return True
        return False
