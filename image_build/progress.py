"""The build's progress display: one line per stage with its current step and elapsed time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table


@dataclass
class StageTimer:
    """Wall-clock seconds per stage, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)


class BuildProgress:
    """Rich progress bars on a terminal, plain lines elsewhere (CI logs stay readable)."""

    def __init__(self, stages: tuple[str, ...], console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.timer = StageTimer()
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[bold]{task.fields[stage]:<11}[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal,
        )
        self._tasks = {
            name: self._progress.add_task("waiting", stage=name, total=1, start=False)
            for name in stages
        }
        self._current: str | None = None

    def __enter__(self) -> BuildProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        task = self._tasks[name]
        self._current = name
        self._progress.start_task(task)
        self._progress.update(task, description="running")
        if not self.console.is_terminal:
            self.console.print(f"[bold]==> {name}[/]")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self._progress.update(task, description="[red]failed[/]")
            raise
        finally:
            self.timer.seconds[name] = time.monotonic() - start
            self._current = None
        self._progress.update(task, completed=1, description="[green]done[/]")
        if not self.console.is_terminal:
            self.console.print(f"    {name} done in {self.timer.seconds[name]:.1f} s")

    def step(self, text: str) -> None:
        """Show what the current stage is doing now."""
        if self._current is None:
            return
        self._progress.update(self._tasks[self._current], description=text)
        if not self.console.is_terminal:
            self.console.print(f"    {text}")

    def summary(self) -> Table:
        table = Table(title="stage times", show_edge=False)
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        for name, seconds in self.timer.seconds.items():
            table.add_row(name, f"{seconds:.1f}")
        table.add_row("[bold]total[/]", f"[bold]{sum(self.timer.seconds.values()):.1f}[/]")
        return table
