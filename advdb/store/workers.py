"""Workers of a run and the batch claims they share (many processes, one run).

Every process that works on an attack run is a *worker*: a single ``advdb attack``, each
rank under ``torchrun``, each ``advdb attack --join``. Workers take batches by *claiming*
them in the store: a claim names the worker and a lease; the worker's heartbeat renews
its leases; a claim whose lease ran out (the worker died or stalled) goes to the next
worker that asks. A batch is done when its ``batches`` row is committed, which happens at
most once (:mod:`advdb.store.ingest`), so a batch attacked twice is stored once.

PostgreSQL hands out claims with ``SELECT … FOR UPDATE SKIP LOCKED`` (parallel workers
never wait for each other); SQLite serialises them under its write lock (``BEGIN
IMMEDIATE``). Leases compare timestamps written by different machines: keep their clocks
in step (NTP, as any cluster does); a lease of a minute tolerates seconds of skew.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from advdb.store.engine import Store
from advdb.store.models import Batch, BatchClaim, Worker
from advdb.store.records import utcnow

DEFAULT_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class WorkerInfo:
    """One worker of a run, as ``advdb runs show`` lists it."""

    worker_id: int
    host: str
    pid: int
    device: str
    rank: int | None
    status: str
    batches_done: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    finished_at: dt.datetime | None
    live: bool
    error: str | None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_live(w: Worker, now: dt.datetime) -> bool:
    """A running worker is live while its process is (this host) or its heartbeat is fresh (elsewhere)."""
    if w.status != "running":
        return False
    if w.host == socket.gethostname():
        return pid_alive(w.pid)
    return (now - w.heartbeat_at).total_seconds() < w.lease_seconds


def register_worker(
    store: Store,
    run_id: int,
    *,
    device: str,
    rank: int | None,
    lease_seconds: float,
    started_at: dt.datetime | None = None,
) -> int:
    """Record this process as a worker of ``run_id``; returns its worker id."""
    now = utcnow()
    w = Worker(
        run_id=run_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        device=device[:64],
        rank=rank,
        status="running",
        lease_seconds=lease_seconds,
        started_at=started_at or now,
        heartbeat_at=now,
    )
    with store.session() as s:
        s.add(w)
        s.flush()
        return w.worker_id


def heartbeat(store: Store, worker_id: int, lease_seconds: float) -> None:
    """Say the worker is alive and extend the leases of the batches it holds."""
    now = utcnow()
    with store.session() as s:
        s.execute(update(Worker).where(Worker.worker_id == worker_id).values(heartbeat_at=now))
        s.execute(
            update(BatchClaim)
            .where(BatchClaim.worker_id == worker_id)
            .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
        )


def finish_worker(store: Store, worker_id: int, status: str, *, error: str | None = None) -> None:
    """Mark the worker finished, interrupted or failed and free the batches it still holds."""
    now = utcnow()
    with store.session() as s:
        s.execute(
            update(Worker)
            .where(Worker.worker_id == worker_id)
            .values(status=status, finished_at=now, heartbeat_at=now, error=error)
        )
        s.execute(update(BatchClaim).where(BatchClaim.worker_id == worker_id).values(worker_id=None, lease_until=None))


def reap_dead_workers(store: Store, run_id: int) -> int:
    """Workers of ``run_id`` on this host whose process is gone: mark them dead, free their batches.

    Workers on other hosts are left to their leases. Returns how many were reaped.
    """
    with store.session() as s:
        rows = s.execute(
            select(Worker.worker_id, Worker.pid).where(
                Worker.run_id == run_id, Worker.status == "running", Worker.host == socket.gethostname()
            )
        ).all()
    dead = [wid for wid, pid in rows if pid != os.getpid() and not pid_alive(pid)]
    for wid in dead:
        finish_worker(store, wid, "dead", error="the process ended without saying so (killed?)")
    return len(dead)


def ensure_claims(store: Store, run_id: int, n_batches: int) -> None:
    """Create the claim rows of a run's batches (idempotent; runs stored before workers existed get theirs here)."""
    rows = [
        {"run_id": run_id, "batch_index": b, "worker_id": None, "lease_until": None, "attempts": 0}
        for b in range(n_batches)
    ]
    if not rows:
        return
    dialect = postgresql if store.backend == "postgresql" else sqlite
    with store.session() as s:
        have = s.scalar(select(func.count()).select_from(BatchClaim).where(BatchClaim.run_id == run_id))
        if have == n_batches:
            return
        s.execute(dialect.insert(BatchClaim).values(rows).on_conflict_do_nothing())


def _not_committed() -> ColumnElement[bool]:
    return ~exists().where(Batch.run_id == BatchClaim.run_id, Batch.batch_index == BatchClaim.batch_index)


def claim_batch(store: Store, run_id: int, worker_id: int, lease_seconds: float) -> int | None:
    """Claim the lowest batch that is neither committed nor held under a live lease; None when there is none."""
    now = utcnow()
    with store.session() as s:
        b = s.scalar(
            select(BatchClaim.batch_index)
            .where(
                BatchClaim.run_id == run_id,
                or_(BatchClaim.worker_id.is_(None), BatchClaim.lease_until < now),
                _not_committed(),
            )
            .order_by(BatchClaim.batch_index)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if b is None:
            return None
        s.execute(
            update(BatchClaim)
            .where(BatchClaim.run_id == run_id, BatchClaim.batch_index == b)
            .values(
                worker_id=worker_id,
                lease_until=now + dt.timedelta(seconds=lease_seconds),
                attempts=BatchClaim.attempts + 1,
            )
        )
        return int(b)


def committed_batches(store: Store, run_id: int) -> set[int]:
    """The batch indices of ``run_id`` that are committed."""
    with store.session() as s:
        return set(s.scalars(select(Batch.batch_index).where(Batch.run_id == run_id)))


def live_workers(store: Store, run_id: int, *, exclude: int | None = None) -> int:
    """How many workers of ``run_id`` (other than ``exclude``) are live."""
    now = utcnow()
    with store.session() as s:
        ws = list(s.scalars(select(Worker).where(Worker.run_id == run_id, Worker.status == "running")))
    return sum(1 for w in ws if w.worker_id != exclude and _is_live(w, now))


def has_workers(store: Store, run_id: int) -> bool:
    with store.session() as s:
        return bool(s.scalar(select(exists().where(Worker.run_id == run_id))))


def list_workers(store: Store, run_id: int) -> list[WorkerInfo]:
    """The run's workers, oldest first, with the batches each committed."""
    now = utcnow()
    with store.session() as s:
        done = dict(
            s.execute(
                select(Batch.worker_id, func.count()).where(Batch.run_id == run_id).group_by(Batch.worker_id)
            ).all()
        )
        ws = list(s.scalars(select(Worker).where(Worker.run_id == run_id).order_by(Worker.worker_id)))
    return [
        WorkerInfo(
            worker_id=w.worker_id,
            host=w.host,
            pid=w.pid,
            device=w.device,
            rank=w.rank,
            status=w.status,
            batches_done=int(done.get(w.worker_id, 0)),
            started_at=w.started_at,
            heartbeat_at=w.heartbeat_at,
            finished_at=w.finished_at,
            live=_is_live(w, now),
            error=w.error,
        )
        for w in ws
    ]


def worker_counts(store: Store, run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per run: (workers, live workers), for the runs that have any."""
    now = utcnow()
    with store.session() as s:
        ws = list(s.scalars(select(Worker).where(Worker.run_id.in_(run_ids)))) if run_ids else []
    out: dict[int, tuple[int, int]] = {}
    for w in ws:
        total, live = out.get(w.run_id, (0, 0))
        out[w.run_id] = (total + 1, live + _is_live(w, now))
    return out


def busy_seconds(store: Store, run_id: int) -> float:
    """Wall-clock seconds during which at least one worker of the run was at work (union of their spans)."""
    with store.session() as s:
        spans = s.execute(
            select(Worker.started_at, func.coalesce(Worker.finished_at, Worker.heartbeat_at))
            .where(Worker.run_id == run_id)
            .order_by(Worker.started_at)
        ).all()
    total, end = 0.0, None
    for start, stop in spans:
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


class Heartbeat:
    """A daemon thread that beats a worker's heart every quarter lease until stopped."""

    def __init__(self, store: Store, worker_id: int, lease_seconds: float) -> None:
        self._store, self._worker_id, self._lease = store, worker_id, lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="advdb-heartbeat")

    def _loop(self) -> None:
        while not self._stop.wait(max(self._lease / 4, 0.2)):
            try:
                heartbeat(self._store, self._worker_id, self._lease)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease; the next one retries
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
