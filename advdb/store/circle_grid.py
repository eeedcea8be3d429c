"""The circles experiment's gradient maps (figure 6), one row per source and grid point."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from advdb.store.models import CircleGrid
from advdb.store.runs import FinalWrite


def circle_grid_write(run_id: int, grid: dict[str, dict[str, list[float]]]) -> FinalWrite:
    """The write of the circles experiment's gradient maps (loss → column → values), to commit with *finished*."""

    def write(s: Session) -> None:
        for loss, cols in grid.items():
            rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
            if rows:
                s.execute(insert(CircleGrid), [{"run_id": run_id, "loss": loss, **r} for r in rows])

    return write
