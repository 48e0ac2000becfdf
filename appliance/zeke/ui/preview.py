"""A small live picture of the frame in the terminal: two pixels per cell with '▀'.

For the attached screen only: the preview never leaves the process that holds the frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

_HALF = "▀"


def render_preview(image: np.ndarray, boxes, width: int = 64) -> list[list[Segment]]:
    """Downscale to ``width`` columns, draw the face boxes, return rich segment lines."""
    h, w = image.shape[:2]
    rows = max(2, round(h / w * width / 2) * 2)
    small = cv2.resize(image, (width, rows), interpolation=cv2.INTER_AREA)
    sx, sy = width / w, rows / h
    for box in boxes:
        x0, y0, x1, y1 = (round(v) for v in (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
        cv2.rectangle(small, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (0, 255, 0), 1)
    rgb = small[:, :, ::-1]
    lines = []
    cache: dict[tuple, Style] = {}
    for r in range(0, rows, 2):
        top, bottom = rgb[r], rgb[r + 1]
        line = []
        for c in range(width):
            key = (*top[c], *bottom[c])
            style = cache.get(key)
            if style is None:
                style = Style(
                    color=Color.from_rgb(*(int(v) for v in top[c])),
                    bgcolor=Color.from_rgb(*(int(v) for v in bottom[c])),
                )
                cache[key] = style
            line.append(Segment(_HALF, style))
        lines.append(line)
    return lines


class Preview:
    """A rich renderable holding the latest preview lines."""

    def __init__(self, lines: list[list[Segment]]):
        self.lines = lines

    def __rich_console__(self, console, options):
        for line in self.lines:
            yield from line
            yield Segment.line()
