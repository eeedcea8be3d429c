"""Runs: create, look up, list, update status and delete (rows and artifact files)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from advdb.errors import ConfigError, ConflictError, NotFoundError, a
from advdb.store.engine import Store
from advdb.store.models import (
    Artifact,
    Batch,
    BatchClaim,
    CircleGrid,
    DefenseResult,
    DetectorEpoch,
    DetectorResult,
    Image,
    Run,
    RunImage,
    Sample,
    Trajectory,
    TransferResult,
    Worker,
)
from advdb.store.records import RunRecord, to_record, utcnow
from advdb.store.workers import has_workers, live_workers, pid_alive, reap_dead_workers
from advdb.vocabulary import RUN_KINDS, RUN_STATUSES, check_choice


def software_versions() -> dict[str, str]:
    """Versions of the software that shapes a run's results."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("advdb", "torch", "torchvision", "numpy", "duckdb", "sqlalchemy", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def create_run(
    store: Store, *, kind: str, config: dict[str, Any], versions: dict[str, str] | None = None, **columns: Any
) -> RunRecord:
    """Insert a run in status ``running`` with its full configuration, versions, host and pid.

    ``versions`` adds to (and overrides) the installed package versions, e.g. torch's build.
    """
    now = utcnow()
    run = Run(
        kind=kind,
        status="running",
        config=config,
        versions={**software_versions(), **(versions or {})},
        host=socket.gethostname(),
        pid=os.getpid(),
        created_at=now,
        started_at=now,
        updated_at=now,
        synthetic=bool(columns.pop("synthetic", False)),
        **columns,
    )
    with store.session() as s:
        s.add(run)
        s.flush()
        return to_record(RunRecord, run)


def create_keyed_run(store: Store, *, launch_key: str, **fields: Any) -> RunRecord | None:
    """:func:`create_run` with a launch key; None if another process created the run with that key first."""
    try:
        return create_run(store, launch_key=launch_key, **fields)
    except IntegrityError:
        if find_run_by_key(store, launch_key) is None:
            raise
        return None


def find_run_by_key(store: Store, launch_key: str) -> RunRecord | None:
    """The run created with ``launch_key`` (``--join-key`` or a torchrun launch), if any."""
    with store.session() as s:
        run = s.scalar(select(Run).where(Run.launch_key == launch_key))
        return to_record(RunRecord, run) if run is not None else None


def get_run(store: Store, run_id: int) -> RunRecord:
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is not None:
            return to_record(RunRecord, run)
    raise NotFoundError(f"no run {run_id} in {store.location.masked}: see `advdb runs list`")


def list_runs(
    store: Store, *, kind: str | None = None, status: str | None = None, limit: int | None = None
) -> list[RunRecord]:
    """Runs, newest first, filtered by kind and status (unknown values are a ConfigError)."""
    if kind is not None:
        check_choice(kind, RUN_KINDS, "run kind")
    if status is not None:
        check_choice(status, RUN_STATUSES, "run status")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    q = select(Run).order_by(Run.run_id.desc())
    if kind:
        q = q.where(Run.kind == kind)
    if status:
        q = q.where(Run.status == status)
    if limit:
        q = q.limit(limit)
    with store.session() as s:
        return [to_record(RunRecord, r) for r in s.scalars(q)]


def _status_values(status: str, error: str | None, wall_seconds: float | None) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now, "error": error}
    if status in ("finished", "failed", "interrupted"):
        values["finished_at"] = now
    else:
        values.update(finished_at=None, host=socket.gethostname(), pid=os.getpid())
    if wall_seconds is not None:
        values["wall_seconds"] = wall_seconds
    return values


def set_status(
    store: Store, run_id: int, status: str, *, error: str | None = None, wall_seconds: float | None = None
) -> None:
    """Mark a run finished, failed or interrupted (or running again, on resume)."""
    with store.session() as s:
        s.execute(update(Run).where(Run.run_id == run_id).values(**_status_values(status, error, wall_seconds)))


# A write that commits together with a run's *finished* status (see :mod:`advdb.store.lifecycle`).
FinalWrite = Callable[[Session], None]


def finish_run(store: Store, run_id: int, *, wall_seconds: float, writes: Iterable[FinalWrite] = ()) -> None:
    """Mark a run finished in the same transaction as its final results (``writes``)."""
    with store.session() as s:
        for write in writes:
            write(s)
        s.execute(update(Run).where(Run.run_id == run_id).values(**_status_values("finished", None, wall_seconds)))


def last_activity(store: Store, run: RunRecord) -> Any:
    """When the run last changed: its status update or its latest committed batch."""
    with store.session() as s:
        last_batch = s.scalar(select(func.max(Batch.committed_at)).where(Batch.run_id == run.run_id))
    times = [t for t in (run.updated_at, run.started_at, last_batch) if t is not None]
    return max(times) if times else None


def is_live(store: Store, run: RunRecord, *, stale_after_s: float = 900.0) -> bool:
    """Whether a ``running`` run is really being worked on by a live process.

    An attack run is live while one of its workers is (see :mod:`advdb.store.workers`).
    Other runs: on this host the pid tells; a run from another host is live while it
    committed something in the last ``stale_after_s`` seconds.
    """
    if run.status != "running":
        return False
    if has_workers(store, run.run_id):
        return live_workers(store, run.run_id) > 0
    if run.host == socket.gethostname() and run.pid:
        return run.pid != os.getpid() and pid_alive(run.pid)
    last = last_activity(store, run)
    return last is not None and (utcnow() - last).total_seconds() < stale_after_s


def settle_abandoned(store: Store, runs: Iterable[RunRecord]) -> set[int]:
    """Runs still marked running whose every worker is gone: mark those workers dead and the runs interrupted.

    A worker that ends without saying so (killed, its machine lost, the database away for
    longer than it waits) leaves its run marked running; whoever looks next settles it.
    Returns the ids of the runs settled.
    """
    settled = set()
    for run in runs:
        if run.status != "running" or not has_workers(store, run.run_id):
            continue
        reap_dead_workers(store, run.run_id)
        if live_workers(store, run.run_id) == 0:
            set_status(
                store,
                run.run_id,
                "interrupted",
                error="abandoned: its workers stopped without saying so (killed, or lost the database)",
            )
            settled.add(run.run_id)
    return settled


def _where(store: Store, run: RunRecord) -> str:
    n = live_workers(store, run.run_id)
    return f"{n} live worker(s): see `advdb runs show {run.run_id}`" if n else f"pid {run.pid} on {run.host}"


def resumable_run(store: Store, run_id: int, kind: str) -> RunRecord:
    """The run ``run_id`` if it is a ``kind`` run that can be resumed, else a clear error."""
    run = get_run(store, run_id)
    if run.kind != kind:
        raise ConflictError(f"run {run_id} is {a(run.kind)} run, not {a(kind)} run")
    if run.status == "finished":
        raise ConflictError(f"run {run_id} is already finished: nothing to resume")
    if is_live(store, run):
        more = f"; add a worker with `advdb attack --join {run_id}`" if run.kind == "attack" else ""
        raise ConflictError(f"run {run_id} is still running ({_where(store, run)}); stop it before resuming{more}")
    return run


def stored_plan(store: Store, run_id: int) -> list[tuple[int, int, int, int]]:
    """An attack run's work list in attack order: (image_id, label, target, dataset index) per image."""
    with store.session() as s:
        rows = s.execute(
            select(RunImage.image_id, RunImage.label, RunImage.target, Image.idx)
            .join(Image, Image.image_id == RunImage.image_id)
            .where(RunImage.run_id == run_id)
            .order_by(RunImage.position)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def has_plan(store: Store, run_id: int) -> bool:
    """Whether the run's work list is stored (it commits in one transaction)."""
    with store.session() as s:
        return (s.scalar(select(func.count()).select_from(RunImage).where(RunImage.run_id == run_id)) or 0) > 0


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive (first, last) ranges sorted and merged where they touch or overlap."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def row_ranges(session: Session, run_id: int) -> list[tuple[int, int]]:
    """The trajectory row ids of a run's committed batches, as merged inclusive ranges."""
    rows = session.execute(
        select(Batch.first_row, Batch.first_row + Batch.n_rows - 1).where(Batch.run_id == run_id, Batch.n_rows > 0)
    ).all()
    return merge_ranges((int(a), int(b)) for a, b in rows)


@dataclass
class RunCounts:
    """What a run has committed; ``attack_seconds`` sums its batches' time inside the attack loop;
    ``evaluated_rows`` are a transfer or defense run's rows (an image, or an image at a strength)."""

    batches: int
    samples: int
    trajectory_rows: int
    artifacts: int
    succeeded: int
    attack_seconds: float
    evaluated_rows: int = 0


def run_counts(store: Store, run_id: int) -> RunCounts:
    with store.session() as s:

        def count(model: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(model).where(model.run_id == run_id)) or 0)

        succeeded = s.scalar(
            select(func.count())
            .select_from(Sample)
            .where(Sample.run_id == run_id, Sample.first_success_iter.is_not(None))
        )
        rows, seconds = s.execute(  # batches record their rows and time
            select(func.sum(Batch.n_rows), func.sum(Batch.attack_seconds)).where(Batch.run_id == run_id)
        ).one()
        return RunCounts(
            batches=count(Batch),
            samples=count(Sample),
            trajectory_rows=int(rows or 0),
            artifacts=count(Artifact),
            succeeded=int(succeeded or 0),
            attack_seconds=float(seconds or 0.0),
            evaluated_rows=count(TransferResult) + count(DefenseResult),
        )


def delete_run(store: Store, run_id: int, *, force: bool = False) -> int:
    """Delete a run, its rows in every table and its artifact files. Returns the rows deleted.

    A run still being worked on by a live process is refused unless ``force``.
    """
    run = get_run(store, run_id)
    if is_live(store, run) and not force:
        raise ConflictError(f"run {run_id} is still running ({_where(store, run)}); stop it first")
    with store.session() as s:
        for source_of, what in ((DetectorResult, "detector"), (TransferResult, "transfer"), (DefenseResult, "defense")):
            if s.scalar(select(func.count()).select_from(source_of).where(source_of.source_run_id == run_id)):
                raise ConflictError(f"run {run_id} is a source of {what} runs; delete those first")
    n = 0
    with store.session() as s:
        for first, last in row_ranges(s, run_id):
            n += _deleted(s.execute(delete(Trajectory).where(Trajectory.row_id.between(first, last))))
        for model in (
            Sample, Artifact, Batch, BatchClaim, Worker, RunImage, DetectorEpoch, DetectorResult, CircleGrid,
            TransferResult, DefenseResult,
        ):  # fmt: skip
            n += _deleted(s.execute(delete(model).where(model.run_id == run_id)))
        s.execute(delete(Run).where(Run.run_id == run_id))
    run_dir = store.location.artifacts_dir / f"run-{run_id}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return n + 1


def _deleted(result: Any) -> int:
    """The rows a DELETE removed."""
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0
