"""A rich progress bar for attack runs (images done, image-iterations/s, ETA).

The rate counts each image's iteration budget (the run's ``iterations``); an attack that
stops early (``--early-stop``, CW's abort) does fewer, so its rate is an upper bound.
"""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .render import err_console


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
    """Implements :class:`advdb.progress.AttackProgress` on stderr (``suffix``: e.g. this worker's rank)."""

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, *, run_id: int, label: str, total_images: int, done_images: int, iterations: int) -> None:
        self._progress = Progress(
            TextColumn(f"[bold]run {run_id}[/bold] {label}{self.suffix}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images"),
            _RateColumn(iterations),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
            disable=not err_console.is_terminal,
        )
        self._progress.start()
        self._task = self._progress.add_task("attack", total=total_images, completed=done_images)

    def advance(self, images: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, images)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
