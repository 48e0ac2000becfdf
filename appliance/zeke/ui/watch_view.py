"""The ``zeke watch`` screen: header, faces, emotion mix, pipeline speed, board health, sinks."""

from __future__ import annotations

import time
from collections import deque

from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from zeke.health import Health
from zeke.live.loop import Snapshot
from zeke.live.stats import STAGES

EMOTION_COLOURS = {
    "angry": "red",
    "disgust": "green4",
    "fear": "magenta",
    "happy": "yellow",
    "sad": "blue",
    "surprise": "cyan",
    "neutral": "white",
}


def bar(fraction: float, width: int = 12, colour: str = "white") -> Text:
    filled = max(0.0, min(1.0, fraction)) * width
    full = int(filled)
    partial = " ▏▎▍▌▋▊▉"[int((filled - full) * 8)] if full < width else ""
    return Text("█" * full + partial.strip(), style=colour) + Text(
        " " * (width - full - len(partial.strip()))
    )


class EmotionMix:
    """Share of face-time per emotion over the last ``window`` seconds."""

    def __init__(self, window: float = 60.0):
        self.window = window
        self._samples: deque[tuple[float, str]] = deque()

    def add(self, labels: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for label in labels:
            self._samples.append((now, label))
        while self._samples and now - self._samples[0][0] > self.window:
            self._samples.popleft()

    def shares(self) -> dict[str, float]:
        total = len(self._samples)
        counts: dict[str, int] = {}
        for _, label in self._samples:
            counts[label] = counts.get(label, 0) + 1
        return {k: counts.get(k, 0) / total if total else 0.0 for k in EMOTION_COLOURS}


class WatchView:
    """Builds the layout from the latest snapshot; ``render`` is cheap enough for 10 Hz."""

    def __init__(self, header: dict, preview: bool = False, kiosk: bool = False):
        self.header = header
        self.preview_enabled = preview
        self.kiosk = kiosk
        self.mix = EmotionMix()
        self.snapshot: Snapshot | None = None
        self.health: Health | None = None
        self.sink_states: dict[str, str] = {}
        self.preview_lines = None
        self.notice: str | None = None

    def update(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.mix.add([t.smoother.label for t in snapshot.tracker.visible if t.smoother.label])

    def _header(self) -> Panel:
        h = self.header
        text = Text.assemble(
            ("zeke watch", "bold"),
            "  ",
            (h.get("board", "?"), "cyan"),
            "  camera ",
            (h.get("camera", "?"), "bold"),
            "\n",
            "detector ",
            (f"{h.get('detector')} on {h.get('detect_backend')}", "bold"),
            "  emotion ",
            (f"{h.get('emotion_model')} on {h.get('classify_backend')}", "bold"),
            "  models ",
            (h.get("models", "?"), "dim"),
        )
        if self.snapshot is not None and self.snapshot.paused:
            text.append("  [PAUSED: p resumes]", style="bold yellow")
        if self.notice:
            text.append(f"  {self.notice}", style="bold red")
        return Panel(text, padding=(0, 1))

    def _faces(self) -> Panel:
        table = Table(expand=True, box=None, pad_edge=False)
        table.add_column("ID", justify="right", style="bold")
        table.add_column("emotion")
        table.add_column("", no_wrap=True)
        table.add_column("score", justify="right")
        table.add_column("dwell", justify="right")
        tracks = self.snapshot.tracker.visible if self.snapshot else []
        for track in sorted(tracks, key=lambda t: t.id):
            label = track.smoother.label or "-"
            colour = EMOTION_COLOURS.get(label, "white")
            table.add_row(
                str(track.id),
                Text(label, style=colour),
                bar(track.smoother.score, 12, colour),
                f"{track.smoother.score:.2f}",
                f"{track.dwell:.1f}s",
            )
        if not tracks:
            table.add_row("", Text("no faces", style="dim"), "", "", "")
        paused = " · PAUSED (p resumes)" if self.snapshot and self.snapshot.paused else ""
        return Panel(table, title=f"faces ({len(tracks)}){paused}", title_align="left")

    def _mix(self) -> Panel:
        table = Table.grid(padding=(0, 1))
        for label, share in self.mix.shares().items():
            colour = EMOTION_COLOURS[label]
            table.add_row(Text(label, style=colour), bar(share, 16, colour), f"{share * 100:3.0f}%")
        return Panel(table, title="emotions, last minute", title_align="left")

    def _speed(self) -> Panel:
        stats = self.snapshot.stats if self.snapshot else None
        table = Table.grid(padding=(0, 1))
        table.add_column()
        table.add_column(justify="right")
        table.add_column(justify="right")
        if stats is not None:
            table.add_row(Text("FPS", style="bold"), f"{stats.fps:.1f}", "")
            table.add_row("frames", str(stats.frames), f"dropped {stats.dropped}")
            table.add_row(Text("latency ms", style="bold"), "p50", "p95")
            for stage in STAGES:
                p50, p95 = stats.percentiles(stage)
                table.add_row(stage, f"{p50:.2f}", f"{p95:.2f}")
        return Panel(table, title="pipeline", title_align="left")

    def _health(self) -> Panel:
        table = Table.grid(padding=(0, 1))
        h = self.health
        if h is not None:
            table.add_row("CPU", f"{h.cpu_percent:.0f}%", f"load {h.load1:.2f}")
            temp = "n/a" if h.temp_c is None else f"{h.temp_c:.0f} °C"
            table.add_row("temp", temp, "")
            table.add_row(
                "memory", f"{h.mem_used_mb:.0f}/{h.mem_total_mb:.0f} MB", f"rss {h.rss_mb:.0f} MB"
            )
        source = self.snapshot.source_state if self.snapshot else "starting"
        table.add_row("camera", Text(source, style="green" if source == "ok" else "yellow"), "")
        for name, state in self.sink_states.items():
            table.add_row(name, state, "")
        return Panel(table, title="board", title_align="left")

    def render(self) -> Layout:
        layout = Layout()
        layout.split_column(Layout(self._header(), size=4, name="header"), Layout(name="body"))
        left = [
            Layout(self._faces(), name="faces", ratio=3),
            Layout(self._mix(), name="mix", ratio=2),
        ]
        right = [Layout(self._speed(), name="speed"), Layout(self._health(), name="health")]
        if self.preview_enabled and self.preview_lines is not None:
            from zeke.ui.preview import Preview

            left.insert(
                0,
                Layout(
                    Panel(Preview(self.preview_lines), title="preview"), name="preview", ratio=4
                ),
            )
        layout["body"].split_row(Layout(name="left", ratio=3), Layout(name="right", ratio=2))
        layout["left"].split_column(*left)
        layout["right"].split_column(*right)
        return layout

    def plain_line(self) -> str:
        """One line for non-terminal output."""
        s = self.snapshot
        if s is None:
            return "starting"
        faces = ", ".join(
            f"#{t.id} {t.smoother.label} {t.smoother.score:.2f}"
            for t in sorted(s.tracker.visible, key=lambda t: t.id)
        )
        p50, p95 = s.stats.percentiles("total")
        return (
            f"frames {s.stats.frames} fps {s.stats.fps:.1f} "
            f"latency p50 {p50:.1f} ms p95 {p95:.1f} ms dropped {s.stats.dropped} faces [{faces}]"
        )
