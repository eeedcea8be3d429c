"""Evaluation runs' records: stored adversarial images shown to another classifier (transfer)
or transformed and shown to their own (defense), one row per image (and strength)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import case, func, insert, select

from advdb.store.engine import Store
from advdb.store.models import Artifact, DefenseResult, Sample, TransferResult
from advdb.store.records import AttackedImageRecord

RESULT_TABLES: dict[str, type[TransferResult] | type[DefenseResult]] = {
    "transfer": TransferResult,
    "defense": DefenseResult,
}


def attacked_images(store: Store, run_ids: list[int]) -> list[AttackedImageRecord]:
    """The adversarial image files of ``run_ids`` with each image's label and target, by run and image."""
    with store.session() as s:
        rows = s.execute(
            select(
                Artifact.run_id,
                Artifact.image_id,
                Artifact.path,
                Artifact.sha256,
                Sample.label,
                Sample.target,
                Artifact.still_adversarial,
            )
            .join(Sample, (Sample.run_id == Artifact.run_id) & (Sample.image_id == Artifact.image_id))
            .where(Artifact.run_id.in_(run_ids))
            .order_by(Artifact.run_id, Artifact.image_id)
        ).all()
    return [
        AttackedImageRecord(
            run_id=int(r), image_id=int(i), path=str(p), sha256=str(h), label=int(y), target=int(t),
            still_adversarial=bool(a),
        )
        for r, i, p, h, y, t, a in rows
    ]  # fmt: skip


def evaluated_images(store: Store, kind: str, run_id: int) -> set[tuple[int, int]]:
    """The (source run, image) pairs evaluation run ``run_id`` has stored (all strengths at once)."""
    model = RESULT_TABLES[kind]
    with store.session() as s:
        rows = s.execute(select(model.source_run_id, model.image_id).where(model.run_id == run_id).distinct())
        return {(int(r), int(i)) for r, i in rows}


def add_results(store: Store, kind: str, run_id: int, rows: Iterable[Mapping[str, Any]]) -> int:
    """Store one chunk of an evaluation run's rows in one transaction; returns the row count."""
    values = [{"run_id": run_id, **row} for row in rows]
    if values:
        with store.session() as s:
            s.execute(insert(RESULT_TABLES[kind]), values)
    return len(values)


def _rate(flag: Any) -> Any:
    return func.avg(case((flag, 1.0), else_=0.0))


def transfer_summary(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per source run: images, and among those adversarial on the source model, the share that
    transfer targeted (the target) and untargeted (not the true class)."""
    t, a = TransferResult, Artifact
    with store.session() as s:
        rows = s.execute(
            select(t.source_run_id, func.count(), _rate(t.targeted), _rate(t.untargeted))
            .join(a, (a.run_id == t.source_run_id) & (a.image_id == t.image_id))
            .where(t.run_id == run_id, a.still_adversarial)
            .group_by(t.source_run_id)
            .order_by(t.source_run_id)
        ).all()
    return [{"source_run_id": r, "adversarial": n, "targeted": tt, "untargeted": ut} for r, n, tt, ut in rows]


def defense_summary(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per source run and strength: among images adversarial on the source model, the share still
    the target after the transformation, and the share of their genuine images still correct."""
    d, a = DefenseResult, Artifact
    with store.session() as s:
        rows = s.execute(
            select(d.source_run_id, d.strength, func.count(), _rate(d.still_target), _rate(d.genuine_correct))
            .join(a, (a.run_id == d.source_run_id) & (a.image_id == d.image_id))
            .where(d.run_id == run_id, a.still_adversarial)
            .group_by(d.source_run_id, d.strength)
            .order_by(d.source_run_id, d.strength)
        ).all()
    return [
        {"source_run_id": r, "strength": st, "adversarial": n, "still_target": surv, "genuine_correct": gen}
        for r, st, n, surv, gen in rows
    ]
