"""What long-running work reports while it runs (the CLI draws progress from these)."""

from __future__ import annotations

from typing import Protocol


class AttackProgress(Protocol):
    """An attack worker: started on a run (``label`` names its attack or source), then images done."""

    def start(self, *, run_id: int, label: str, total_images: int, done_images: int, iterations: int) -> None: ...

    def advance(self, images: int) -> None: ...


class EpochProgress(Protocol):
    """A detector run: one call per finished epoch."""

    def epoch(self, *, run_id: int, epoch: int, epochs: int, train_loss: float, test_accuracy: float) -> None: ...


class StepProgress(Protocol):
    """The whole study (``advdb reproduce``): each step as it starts and ends (``state``)."""

    def step(self, *, index: int, total: int, label: str, state: str) -> None: ...
