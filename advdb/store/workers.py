"""Workers of a run and the batch claims they share (many processes, one run).

Every process that works on an attack run is a *worker*: a single ``advdb attack``, each
rank under ``torchrun``, each ``advdb attack --join``. Workers take batches by *claiming*
them in the store: a claim names the worker and a lease; the worker's heartbeat renews
its leases; a claim whose lease ran out (the worker died or stalled) goes to the next
worker that asks. A batch is done when its ``batches`` row is committed, which happens at
most once (:mod:`advdb.store.ingest`), so a batch attacked twice is stored once.

PostgreSQL hands out claims with ``SELECT … FOR UPDATE SKIP LOCKED`` (parallel workers
never wait for each other); SQLite serialises them under its write lock (``BEGIN
IMMEDIATE``). Every time a lease is set or compared is the database's clock, so workers whose
own clocks disagree still agree on who holds what. On its own node (kernel and pid
namespace), a worker is live while a process with its pid and start time exists; elsewhere,
while its heartbeat is younger than its lease. A batch claimed ``max_attempts`` times without
being committed fails the run, naming the batch.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from advdb.errors import StoreError
from advdb.store.engine import Store
from advdb.store.models import Batch, BatchClaim, Worker
from advdb.store.records import utcnow

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells this process from any other: host name, node (kernel boot id and pid namespace), pid, start time."""

    host: str
    node: str | None
    pid: int
    start: int | None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``); None where unknown."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[19]) if len(fields) > 19 else None  # field 22 of proc(5), counted from field 3


def this_node() -> str | None:
    """This kernel's boot id and this pid namespace: processes share pids only if they share both."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = None
    return f"{boot}/{ns}"[:128] if boot and ns else None


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(host=socket.gethostname(), node=this_node(), pid=pid, start=process_start(pid))


def _same_node(w: Worker, me: ProcessIdentity) -> bool:
    """Whether ``w`` ran where pids can be checked from here (workers stored before 0008: by host name)."""
    if w.host != me.host:
        return False
    return w.node is None or me.node is None or w.node == me.node


def process_exists(pid: int, start: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` still exists (not another one that reused the pid)."""
    if not pid_alive(pid):
        return False
    return start is None or process_start(pid) in (None, start)


def db_now(session: Session) -> dt.datetime:
    """The database's clock, in UTC without a time zone (SQLite's file has no clock but this machine's)."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(text("SELECT CAST(now() AT TIME ZONE 'UTC' AS timestamp)"))  # type: ignore[no-any-return]
    return utcnow()


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


def _is_live(w: Worker, now: dt.datetime, me: ProcessIdentity) -> bool:
    """A running worker is live while its process is (this node) or its heartbeat is fresh (elsewhere)."""
    if w.status != "running":
        return False
    if _same_node(w, me):
        return process_exists(w.pid, w.process_start)
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
    me = this_process()
    with store.session() as s:
        now = db_now(s)
        w = Worker(
            run_id=run_id,
            host=me.host,
            node=me.node,
            pid=me.pid,
            process_start=me.start,
            device=device[:64],
            rank=rank,
            status="running",
            lease_seconds=lease_seconds,
            started_at=started_at or now,
            heartbeat_at=now,
        )
        s.add(w)
        s.flush()
        return w.worker_id


def heartbeat(store: Store, worker_id: int, lease_seconds: float) -> None:
    """Say the worker is alive and extend the leases of the batches it holds.

    A worker that another one took for dead (its beats could not reach the database for longer
    than its lease) is running again; what it held may have passed on, which costs only time:
    a batch is committed once.
    """
    with store.session() as s:
        now = db_now(s)
        s.execute(
            update(Worker)
            .where(Worker.worker_id == worker_id, Worker.status.in_(("running", "dead")))
            .values(heartbeat_at=now, status="running", finished_at=None)
        )
        s.execute(
            update(BatchClaim)
            .where(BatchClaim.worker_id == worker_id)
            .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
        )


def finish_worker(store: Store, worker_id: int, status: str, *, error: str | None = None) -> None:
    """Mark the worker finished, interrupted or failed and free the batches it still holds."""
    with store.session() as s:
        now = db_now(s)
        s.execute(
            update(Worker)
            .where(Worker.worker_id == worker_id)
            .values(status=status, finished_at=now, heartbeat_at=now, error=error)
        )
        s.execute(update(BatchClaim).where(BatchClaim.worker_id == worker_id).values(worker_id=None, lease_until=None))


def reap_dead_workers(store: Store, run_id: int) -> int:
    """Workers of ``run_id`` that are gone: on this node, their process (pid and start time) no longer
    exists; elsewhere, their lease ran out. Marks them dead and frees their batches.

    Returns how many were reaped.
    """
    me = this_process()
    with store.session() as s:
        now = db_now(s)
        ws = list(s.scalars(select(Worker).where(Worker.run_id == run_id, Worker.status == "running")))
        gone = [(w.worker_id, _same_node(w, me)) for w in ws if not _is_me(w, me) and not _is_live(w, now, me)]
    for wid, local in gone:
        why = "the process ended without saying so (killed?)" if local else "its heartbeat stopped (lease ran out)"
        finish_worker(store, wid, "dead", error=why)
    return len(gone)


def _is_me(w: Worker, me: ProcessIdentity) -> bool:
    return _same_node(w, me) and w.pid == me.pid and w.process_start in (None, me.start)


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


def claim_batch(
    store: Store, run_id: int, worker_id: int, lease_seconds: float, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> int | None:
    """Claim the lowest batch that is neither committed nor held under a live lease; None when there is none.

    A batch already claimed ``max_attempts`` times is not attacked again: that is a StoreError
    naming it (a batch that always fails would otherwise take down every worker in turn).
    """
    with store.session() as s:
        now = db_now(s)
        row = s.execute(
            select(BatchClaim.batch_index, BatchClaim.attempts)
            .where(
                BatchClaim.run_id == run_id,
                or_(BatchClaim.worker_id.is_(None), BatchClaim.lease_until < now),
                _not_committed(),
            )
            .order_by(BatchClaim.batch_index)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        b, attempts = row
        if attempts >= max_attempts:
            raise StoreError(_exhausted(s, run_id, int(b), int(attempts)))
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


def _exhausted(s: Session, run_id: int, batch_index: int, attempts: int) -> str:
    last = s.scalar(
        select(Worker.error)
        .where(Worker.run_id == run_id, Worker.error.is_not(None), Worker.status == "failed")
        .order_by(Worker.worker_id.desc())
        .limit(1)
    )
    why = f" (the last failure: {last.splitlines()[0][:200]})" if last else ""
    return (
        f"batch {batch_index} of run {run_id} was taken {attempts} times and never committed{why}: the run has "
        f"failed; fix the cause, then `advdb attack --resume {run_id}` tries it again"
    )


def reset_attempts(store: Store, run_id: int) -> None:
    """Give every uncommitted batch of ``run_id`` its attempts back (on ``--resume``, after the cause is fixed)."""
    with store.session() as s:
        s.execute(update(BatchClaim).where(BatchClaim.run_id == run_id, _not_committed()).values(attempts=0))


def committed_batches(store: Store, run_id: int) -> set[int]:
    """The batch indices of ``run_id`` that are committed."""
    with store.session() as s:
        return set(s.scalars(select(Batch.batch_index).where(Batch.run_id == run_id)))


def live_workers(store: Store, run_id: int, *, exclude: int | None = None) -> int:
    """How many workers of ``run_id`` (other than ``exclude``) are live."""
    me = this_process()
    with store.session() as s:
        now = db_now(s)
        ws = list(s.scalars(select(Worker).where(Worker.run_id == run_id, Worker.status == "running")))
    return sum(1 for w in ws if w.worker_id != exclude and _is_live(w, now, me))


def has_workers(store: Store, run_id: int) -> bool:
    with store.session() as s:
        return bool(s.scalar(select(exists().where(Worker.run_id == run_id))))


def list_workers(store: Store, run_id: int) -> list[WorkerInfo]:
    """The run's workers, oldest first, with the batches each committed."""
    me = this_process()
    with store.session() as s:
        now = db_now(s)
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
            live=_is_live(w, now, me),
            error=w.error,
        )
        for w in ws
    ]


def worker_counts(store: Store, run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per run: (workers, live workers), for the runs that have any."""
    me = this_process()
    with store.session() as s:
        now = db_now(s)
        ws = list(s.scalars(select(Worker).where(Worker.run_id.in_(run_ids)))) if run_ids else []
    out: dict[int, tuple[int, int]] = {}
    for w in ws:
        total, live = out.get(w.run_id, (0, 0))
        out[w.run_id] = (total + 1, live + _is_live(w, now, me))
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
    """A daemon thread that beats a worker's heart every quarter lease until stopped or no longer ``healthy``."""

    def __init__(
        self, store: Store, worker_id: int, lease_seconds: float, *, healthy: Callable[[], bool] | None = None
    ) -> None:
        self._store, self._worker_id, self._lease = store, worker_id, lease_seconds
        self._healthy = healthy or (lambda: True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="advdb-heartbeat")

    def _loop(self) -> None:
        while not self._stop.wait(max(self._lease / 4, 0.2)):
            if not self._healthy():  # e.g. its writer died: let the leases run out so other workers take over
                return
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
