"""A detector run's records: one row per finished epoch, and its results per group of images."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from advdb.store.engine import Store
from advdb.store.models import DetectorEpoch, DetectorResult
from advdb.store.records import DetectorResultRecord
from advdb.store.runs import FinalWrite


def log_epoch(store: Store, run_id: int, row: dict[str, Any]) -> None:
    """Record a finished epoch (once: an epoch redone after a resume keeps its first row)."""
    with store.session() as s:
        if s.get(DetectorEpoch, (run_id, row["epoch"])) is None:
            s.add(DetectorEpoch(run_id=run_id, **row))


def finished_epochs(store: Store, run_id: int) -> list[int]:
    with store.session() as s:
        return sorted(int(e) for e in s.scalars(select(DetectorEpoch.epoch).where(DetectorEpoch.run_id == run_id)))


def detector_results(store: Store, run_id: int) -> list[DetectorResultRecord]:
    """A finished detector run's accuracy per group (each source, adversarial, genuine, overall)."""
    with store.session() as s:
        rows = s.scalars(select(DetectorResult).where(DetectorResult.run_id == run_id))
        return [
            DetectorResultRecord(
                group_name=r.group_name,
                source_run_id=r.source_run_id,
                n_images=r.n_images,
                accuracy=r.accuracy,
                epoch=r.epoch,
            )
            for r in rows
        ]


def results_write(run_id: int, groups: dict[str, tuple[int | None, int, float]], epoch: int) -> FinalWrite:
    """The write of a detector's results (group → (source run, images, accuracy)), to commit with *finished*."""

    def write(s: Session) -> None:
        for name, (source, n, accuracy) in groups.items():
            s.merge(
                DetectorResult(
                    run_id=run_id, group_name=name, source_run_id=source, n_images=n, accuracy=accuracy, epoch=epoch
                )
            )

    return write
