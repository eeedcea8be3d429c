"""Bulk ingest: one batch's trajectory rows, samples, artifacts and batch record, exactly once.

The fastest path measured on both backends (``benchmarks/ingest.py``) is DuckDB inserting
an Arrow table into the attached store. One DuckDB transaction spans the attached database,
so a batch commits whole or not at all; the batch record is inserted first, so committing a
batch twice fails at its primary key before any trajectory row is written, and
:meth:`Ingestor.commit` reports it as already committed instead of duplicating it.

Trajectory rows get consecutive ``row_id`` values starting at the batch's ``first_row``
(see :class:`advdb.store.models.Trajectory`): the table keeps no B-tree over
``(run_id, image_id, iteration)``, so each batch's (image, iteration) pairs are checked
here, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from advdb.errors import StoreError, StoreUnavailable
from advdb.store.columns import ARTIFACT_COLUMNS, SAMPLE_COLUMNS, TRAJECTORY_COLUMNS
from advdb.store.duck import open_duck
from advdb.store.location import StoreLocation
from advdb.store.models import ROW_BLOCK_SIZE, TRAJECTORY_ROW_BLOCKS
from advdb.store.records import utcnow
from advdb.store.retry import gave_up, is_connection_loss, patiently, retry_seconds

_DISK_FULL = re.compile(r"disk is full|no space left|could not extend|file too large|quota exceeded", re.IGNORECASE)

ArrayLike = Any  # numpy array, torch tensor or list

LOCK_RETRY_SECONDS = 120.0


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "sqlite_busy" in text


def _as_array(values: ArrayLike) -> np.ndarray | pa.Array:
    if isinstance(values, (np.ndarray, pa.Array)):
        return values
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        return values.detach().cpu().numpy()
    return pa.array(values)


def arrow_table(columns: Mapping[str, ArrayLike], *, run_id: int | None = None) -> pa.Table:
    """An Arrow table from column arrays; ``run_id`` (if given) becomes a constant first column.

    NaN in a float column becomes NULL (``first_success_iter`` style missing values).
    """
    arrays: dict[str, Any] = {}
    n = None
    for name, values in columns.items():
        arr = _as_array(values)
        if isinstance(arr, np.ndarray):
            if arr.ndim != 1:
                arr = arr.reshape(-1)
            mask = np.isnan(arr) if arr.dtype.kind == "f" else None
            arr = pa.array(arr, mask=mask if mask is not None and mask.any() else None)
        if n is None:
            n = len(arr)
        elif len(arr) != n:
            raise StoreError(f"column {name!r} has {len(arr)} values, expected {n}")
        arrays[name] = arr
    if run_id is not None:
        arrays = {"run_id": pa.array(np.full(n or 0, run_id, dtype=np.int32)), **arrays}
    return pa.table(arrays)


def check_trajectory_keys(image_id: np.ndarray, iteration: np.ndarray, sample_ids: np.ndarray) -> str | None:
    """Why a batch's trajectory rows are not keyed correctly, or None if they are.

    Every (image, iteration) pair must appear once and every image must be one of the
    batch's samples. Rows come image by image with rising iterations, which is checked in
    O(n); any other order falls back to sorting the keys.
    """
    image_id = np.asarray(image_id, dtype=np.int64).reshape(-1)
    iteration = np.asarray(iteration, dtype=np.int64).reshape(-1)
    if len(image_id) == 0:
        return None
    new_image = image_id[1:] != image_id[:-1]
    starts = np.concatenate(([0], np.flatnonzero(new_image) + 1))
    blocks = image_id[starts]
    if bool(np.all(new_image | (iteration[1:] > iteration[:-1]))) and len(np.unique(blocks)) == len(blocks):
        images = blocks
    else:
        keys = (image_id << 32) | (iteration & 0xFFFFFFFF)
        if len(np.unique(keys)) != len(keys):
            return "trajectory rows repeat an (image_id, iteration) pair"
        images = np.unique(image_id)
    if not np.isin(images, np.asarray(sample_ids, dtype=np.int64)).all():
        return "trajectory rows name images that are not among the batch's samples"
    return None


@dataclass
class BatchRecord:
    """Everything one attack batch commits: column arrays keyed by column name."""

    run_id: int
    batch_index: int
    trajectory: Mapping[str, ArrayLike]
    samples: Mapping[str, ArrayLike]
    artifacts: Mapping[str, ArrayLike] | None = None
    attack_seconds: float = 0.0
    worker_id: int | None = None
    committed_at: dt.datetime = field(default_factory=utcnow)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.trajectory.values())))

    @property
    def n_images(self) -> int:
        return len(self.samples["image_id"])


def _open_patiently(location: StoreLocation) -> duckdb.DuckDBPyConnection:
    """The store attached read-write, waiting while its database refuses connections (:mod:`advdb.store.retry`)."""

    def attach() -> duckdb.DuckDBPyConnection:
        try:
            return open_duck(location, read_only=False)
        except (duckdb.Error, StoreError) as exc:
            if is_connection_loss(str(exc)):
                raise StoreUnavailable(str(exc)) from None
            raise

    return patiently(attach, what="attaching the store")


class Ingestor:
    """A DuckDB connection with the store attached read-write, for bulk commits.

    On SQLite, never use it in a process that holds SQLAlchemy (Python ``sqlite3``)
    connections to the same file at the same time: the two SQLite libraries' POSIX locks
    interfere and the file can be corrupted. :class:`advdb.store.writer.BackgroundWriter`
    runs it in its own process; that is what the attack runner uses.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.con: duckdb.DuckDBPyConnection = _open_patiently(location)
        self._broken = False
        self._lost_since: float | None = None  # when the database stopped answering, until a commit succeeds

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _insert(self, table: str, data: pa.Table) -> None:
        cols = ", ".join(data.column_names)
        self.con.register("_advdb_in", data)
        try:
            self.con.execute(f"INSERT INTO store.{table} ({cols}) SELECT {cols} FROM _advdb_in")
        finally:
            self.con.unregister("_advdb_in")

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass

    def _transaction(self, body: Any) -> None:
        """Run ``body`` in one transaction, retrying while another writer holds the SQLite lock and
        while the database is unreachable (:mod:`advdb.store.retry`)."""
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                if self._broken:  # the server went away: a new connection (fails again while it is away)
                    self.con = open_duck(self.location, read_only=False)
                    self._broken = False
                self.con.execute("BEGIN")
                body()
                self.con.execute("COMMIT")
                self._lost_since = None
                return
            except (duckdb.Error, StoreError) as exc:
                lost = is_connection_loss(str(exc))
                if not isinstance(exc, duckdb.Error) and not lost:
                    raise
                self._discard(lost or isinstance(exc, duckdb.FatalException))
                if lost:  # the wait counts from the first loss, across batches: the queue behind gives up at once
                    self._lost_since = self._lost_since or time.monotonic()
                    if time.monotonic() - self._lost_since + delay > retry_seconds():
                        raise gave_up("committing a batch", time.monotonic() - self._lost_since, exc) from None
                elif not (_is_lock_error(exc) and time.monotonic() < deadline):
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0 if self._lost_since else 1.0)

    def _discard(self, connection: bool) -> None:
        """Roll back the failed transaction and, when the connection is unusable, drop it.

        The rollback comes first also then: closing a connection whose PostgreSQL transaction is
        still open rolls it back in a destructor, and the scanner's error there ends the process.
        """
        if self._broken:
            return
        self._rollback()
        if connection:
            try:
                self.con.close()
            except duckdb.Error:
                pass
            self._broken = True

    def insert(self, table: str, columns: Mapping[str, ArrayLike], *, run_id: int | None = None) -> int:
        """Insert column arrays into ``table`` in one transaction; returns the row count."""
        data = arrow_table(columns, run_id=run_id)
        try:
            self._transaction(lambda: self._insert(table, data))
        except duckdb.Error as exc:
            raise StoreError(f"bulk insert into {table} failed: {str(exc).splitlines()[0]}") from None
        return int(data.num_rows)

    def batch_committed(self, run_id: int, batch_index: int) -> bool:
        if self._broken:
            self.con = open_duck(self.location, read_only=False)
            self._broken = False
        row = self.con.execute(
            "SELECT count(*) FROM store.batches WHERE run_id = ? AND batch_index = ?", [run_id, batch_index]
        ).fetchone()
        return bool(row and row[0])

    def _first_row(self) -> int:
        """Reserve row ids for a batch inside the open transaction; returns the first.

        SQLite: the next rowid (writers are serialised; a writer that read a stale maximum
        fails at its write with SQLITE_BUSY and the transaction is retried). PostgreSQL: a
        block of 2³² ids from a sequence, so parallel writers never wait for each other.
        """
        if self.location.backend == "sqlite":
            sql = "sqlite_query('store', 'SELECT coalesce(max(row_id), 0) + 1 FROM trajectory')"
        else:
            sql = f"postgres_query('store', 'SELECT nextval(''{TRAJECTORY_ROW_BLOCKS}'') * {ROW_BLOCK_SIZE}')"
        row = self.con.execute(f"SELECT * FROM {sql}").fetchone()
        assert row is not None  # a sequence always answers
        return int(row[0])

    def commit(self, batch: BatchRecord) -> bool:
        """Commit one batch atomically. Returns False (writing nothing) if it was already committed."""
        cols = {k: batch.trajectory[k] for k in TRAJECTORY_COLUMNS if k != "run_id"}
        if self.location.backend == "sqlite":  # SQLite stores REAL as 8 bytes: hand DuckDB doubles (~5 % faster)
            cols = {
                k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == np.float32 else v)
                for k, v in cols.items()
            }
        traj = arrow_table(cols, run_id=batch.run_id)
        samples = arrow_table({k: batch.samples[k] for k in SAMPLE_COLUMNS}, run_id=batch.run_id)
        problem = check_trajectory_keys(
            traj.column("image_id").to_numpy(),
            traj.column("iteration").to_numpy(),
            samples.column("image_id").to_numpy(),
        )
        if problem is None and traj.num_rows > ROW_BLOCK_SIZE:
            problem = (
                f"{traj.num_rows:,} trajectory rows, more than a batch may hold ({ROW_BLOCK_SIZE:,}): "
                "use a smaller --batch-size"
            )
        if problem is not None:
            raise StoreError(f"batch {batch.batch_index} of run {batch.run_id}: {problem}; nothing was written")
        arts = (
            arrow_table({k: batch.artifacts[k] for k in ARTIFACT_COLUMNS}, run_id=batch.run_id)
            if batch.artifacts is not None
            else None
        )

        def body() -> None:
            first_row = self._first_row()
            self.con.execute(
                "INSERT INTO store.batches (run_id, batch_index, n_images, n_rows, first_row, attack_seconds, "
                "committed_at,"
                " worker_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    batch.run_id,
                    batch.batch_index,
                    batch.n_images,
                    traj.num_rows,
                    first_row,
                    float(batch.attack_seconds),
                    batch.committed_at,
                    batch.worker_id,
                ],
            )
            row_ids = pa.array(np.arange(first_row, first_row + traj.num_rows, dtype=np.int64))
            self._insert("trajectory", traj.add_column(0, "row_id", row_ids))
            self._insert("samples", samples)
            if arts is not None and arts.num_rows:
                self._insert("artifacts", arts)

        try:
            self._transaction(body)
        except duckdb.Error as exc:
            if self.batch_committed(batch.run_id, batch.batch_index):
                return False
            first = str(exc).splitlines()[0]
            advice = (
                f"; nothing of the batch was recorded: free space, then `advdb attack --resume {batch.run_id}`"
                if _DISK_FULL.search(first)
                else ""
            )
            raise StoreError(
                f"committing batch {batch.batch_index} of run {batch.run_id} failed: {first}{advice}"
            ) from None
        return True
