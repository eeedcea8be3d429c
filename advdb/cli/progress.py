"""A rich progress bar for attack runs (images done, image-iterations/s, ETA)."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from advdb.cli.render import err_console


class _RateColumn(ProgressColumn):
    def __init__(self, iterations: int) -> None:
        super().__init__()
        self.iterations = max(iterations, 1)

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("– it/s", style="progress.data.speed")
        return Text(f"{speed * self.iterations:,.0f} img·it/s", style="progress.data.speed")


class RichProgress:
    """Implements the runner's Progress protocol on stderr."""

    def __init__(self, description: str = "attack") -> None:
        self.description = description
        self._progress: Progress | None = None
        self._task = None
        self._t0 = time.perf_counter()

    def start(self, *, run_id: int, total_images: int, done_images: int, iterations: int) -> None:
        self._progress = Progress(
            TextColumn(f"[bold]run {run_id}[/bold] {self.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("images"), _RateColumn(iterations), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=err_console, transient=False, disable=not err_console.is_terminal,
        )
        self._progress.start()
        self._task = self._progress.add_task("attack", total=total_images, completed=done_images)

    def advance(self, images: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, images)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
