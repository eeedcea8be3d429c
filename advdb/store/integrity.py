"""A store's integrity: ``advdb db check`` finds what is wrong, ``advdb db gc`` removes stray files.

:func:`check_store` reads the store in one snapshot (a deferred read transaction on SQLite,
``REPEATABLE READ, READ ONLY`` on PostgreSQL: writers are never blocked) and finds

* batches whose trajectory rows are missing (the rows in ``first_row … first_row + n_rows − 1``
  with the batch's run against ``n_rows``; the images short of their ``n_iterations`` rows,
  T + 1 for the unified iteration, are named), rows of a run outside its batches, batches
  whose sample rows are missing or whose samples record another number of rows, sample rows
  of batches never committed, and batches of a *finished* attack run that were never committed;
* rows of any table that name a run that does not exist (DuckDB's bulk ingest and the
  trajectory table enforce no foreign key);
* artifact rows whose file under the artifact root is missing or has another size or sha256
  (hashed in a thread pool; ``hash_files=False`` checks existence and size only);
* files in the root's ``run-<id>`` folders that no artifact row references (``gc``'s list);
* a columnar copy (:mod:`advdb.analytics.columnar`, described to this module by
  :class:`ColumnarCopy`, since the store sits below analytics) whose rows per run disagree
  with the store's rows of the batches it copied. A copy that is merely behind (batches
  committed since the last query) is not a problem: it is refreshed before every query.

:func:`collect_garbage` lists (and with ``delete=True`` removes) the files of the ``run-<id>``
folders that no artifact row references: files of deleted runs, of batches attacked twice,
temporary files of a writer that crashed. Only those folders are looked at (the marker file
and anything else in the root are not advdb's image files), folders of runs that are live
are left alone, a detector run's checkpoint is kept while its run exists, and before a file
is deleted its references and its ``lstat`` are checked again, so a referenced file is never
deleted. Deleting needs the root's marker file to name this store.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Table, create_engine, event, func, select
from sqlalchemy.exc import DBAPIError

from advdb.artifacts import sha256_of
from advdb.errors import ConfigError, StoreError
from advdb.store.artifact_root import _read_marker, store_id
from advdb.store.engine import Store
from advdb.store.location import SQLITE_BUSY_TIMEOUT_MS
from advdb.store.models import Artifact, Base, Batch, Run, RunImage, Sample, Trajectory
from advdb.store.runs import get_run, is_live, list_runs

# The kinds of problem, in the order a table lists them.
MISSING_BATCH = "missing-batch"
MISSING_TRAJECTORY = "missing-trajectory"
EXTRA_TRAJECTORY = "extra-trajectory"
MISSING_SAMPLES = "missing-samples"
STRAY_SAMPLES = "stray-samples"
ROWS_MISMATCH = "rows-mismatch"
MISSING_FILE = "missing-file"
SIZE_MISMATCH = "size-mismatch"
HASH_MISMATCH = "hash-mismatch"
UNREADABLE_FILE = "unreadable-file"
ORPHAN_ROWS = "orphan-rows"
ORPHAN_FILE = "orphan-file"
COLUMNAR_MISMATCH = "columnar-mismatch"
KINDS: tuple[str, ...] = (
    MISSING_BATCH,
    MISSING_TRAJECTORY,
    EXTRA_TRAJECTORY,
    MISSING_SAMPLES,
    STRAY_SAMPLES,
    ROWS_MISMATCH,
    MISSING_FILE,
    SIZE_MISMATCH,
    HASH_MISMATCH,
    UNREADABLE_FILE,
    ORPHAN_ROWS,
    ORPHAN_FILE,
    COLUMNAR_MISMATCH,
)

RUN_DIR = re.compile(r"run-(\d+)")
TEMP_FILE = re.compile(r"\.tmp\d*$")
# A detector run keeps its checkpoint beside its files to be resumable (advdb/detectors/training.py).
DETECTOR_CHECKPOINT = "detector-checkpoint.pt"
FILES_PER_TASK = 64
MAX_NAMED_IMAGES = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the store: its kind (:data:`KINDS`), where, and what."""

    kind: str
    run_id: int | None
    batch_index: int | None
    path: str | None
    detail: str


@dataclass(frozen=True)
class StrayFile:
    """A file under the artifact root that no artifact row references (``path`` relative to the root)."""

    path: str
    run_id: int | None
    n_bytes: int
    reason: str


@dataclass(frozen=True)
class ColumnarCopy:
    """Where the columnar copy is and the layout version this advdb writes (from :mod:`advdb.analytics.columnar`)."""

    path: Path
    schema_version: int


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_store` looked at and found; ``ok`` when it found nothing."""

    problems: tuple[Problem, ...]
    runs: int
    batches: int
    trajectory_rows: int
    files: int
    hashed: bool
    columnar: str
    notes: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GcReport:
    """Stray files under ``root``: listed, or deleted with the empty folders they leave."""

    root: Path
    files: tuple[StrayFile, ...]
    n_bytes: int
    deleted: bool
    removed_dirs: int
    live_runs: tuple[int, ...]


class CheckProgress(Protocol):
    """Files checked so far (the CLI draws a bar from it)."""

    def start(self, *, files: int, hashing: bool) -> None: ...

    def advance(self, files: int) -> None: ...


@dataclass(frozen=True)
class _Run:
    kind: str
    status: str
    created_at: dt.datetime


@dataclass(frozen=True)
class _Batch:
    run_id: int
    batch_index: int
    n_images: int
    n_rows: int
    first_row: int
    found_rows: int


@dataclass(frozen=True)
class _ArtifactRow:
    run_id: int
    batch_index: int | None
    path: str
    sha256: str
    n_bytes: int


@dataclass
class _Snapshot:
    """What the check read from the store in one transaction."""

    runs: dict[int, _Run]
    batches: list[_Batch]
    problems: list[Problem] = field(default_factory=list)
    artifacts: list[_ArtifactRow] = field(default_factory=list)
    known_files: set[str] = field(default_factory=set)


# --- reading the store in one snapshot -----------------------------------------------------------


def _sqlite_read_only(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # the "begin" event below issues a deferred BEGIN
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA query_only=1")
    finally:
        cur.close()


@contextmanager
def _snapshot(store: Store) -> Iterator[Connection]:
    """A read-only transaction that sees one state of the store and blocks no writer."""
    try:
        if store.backend == "postgresql":
            with store.engine.connect() as conn, conn.begin():
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield conn
            return
        # The store's own engine begins with BEGIN IMMEDIATE (the write lock): read through another.
        engine = create_engine(store.location.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_read_only)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        try:
            with engine.connect() as conn, conn.begin():
                yield conn
        finally:
            engine.dispose()
    except DBAPIError as exc:
        line = str(exc.orig or exc).strip().splitlines()
        raise StoreError(f"checking the store {store.location.masked} failed: {line[0] if line else exc}") from None


def _read_runs(conn: Connection, run_id: int | None) -> dict[int, _Run]:
    q = select(Run.run_id, Run.kind, Run.status, Run.created_at)
    if run_id is not None:
        q = q.where(Run.run_id == run_id)
    return {int(r): _Run(k, s, c) for r, k, s, c in conn.execute(q)}


def _read_batches(conn: Connection, run_id: int | None) -> list[_Batch]:
    """Every committed batch with the trajectory rows of its run found in its row-id range."""
    t, b = Trajectory.__table__, Batch.__table__
    found = (
        select(func.count())
        .select_from(t)
        .where(t.c.row_id.between(b.c.first_row, b.c.first_row + b.c.n_rows - 1), t.c.run_id == b.c.run_id)
        .scalar_subquery()
    )
    q = select(b.c.run_id, b.c.batch_index, b.c.n_images, b.c.n_rows, b.c.first_row, found)
    if run_id is not None:
        q = q.where(b.c.run_id == run_id)
    rows = conn.execute(q.order_by(b.c.run_id, b.c.batch_index))
    return [_Batch(*(int(v) for v in row)) for row in rows]


def _read_samples(conn: Connection, run_id: int | None) -> dict[tuple[int, int], tuple[int, int]]:
    """Per (run, batch): the sample rows and the trajectory rows they record (``n_iterations``)."""
    q = select(Sample.run_id, Sample.batch_index, func.count(), func.coalesce(func.sum(Sample.n_iterations), 0))
    if run_id is not None:
        q = q.where(Sample.run_id == run_id)
    rows = conn.execute(q.group_by(Sample.run_id, Sample.batch_index))
    return {(int(r), int(b)): (int(n), int(s)) for r, b, n, s in rows}


def _read_trajectory_totals(conn: Connection, run_id: int | None) -> dict[int, int]:
    """Trajectory rows per run (one scan of the table)."""
    q = select(Trajectory.run_id, func.count())
    if run_id is not None:
        q = q.where(Trajectory.run_id == run_id)
    return {int(r): int(n) for r, n in conn.execute(q.group_by(Trajectory.run_id))}


def _read_uncommitted_plan(conn: Connection, run_id: int | None) -> list[tuple[int, int]]:
    """(run, batch) planned for a finished attack run with no batch row."""
    committed = select(Batch.batch_index).where(
        Batch.run_id == RunImage.run_id, Batch.batch_index == RunImage.batch_index
    )
    q = (
        select(RunImage.run_id, RunImage.batch_index)
        .join(Run, Run.run_id == RunImage.run_id)
        .where(Run.kind == "attack", Run.status == "finished", ~committed.exists())
        .distinct()
    )
    if run_id is not None:
        q = q.where(RunImage.run_id == run_id)
    return [(int(r), int(b)) for r, b in conn.execute(q.order_by(RunImage.run_id, RunImage.batch_index))]


def _run_columns() -> Iterator[tuple[Table, str]]:
    """Every (table, column) that names a run, but the runs table's own key."""
    for table in Base.metadata.sorted_tables:
        if table.name == Run.__tablename__:
            continue
        for column in ("run_id", "source_run_id"):
            if column in table.c:
                yield table, column


def _read_orphan_rows(conn: Connection) -> list[Problem]:
    """Rows of any table whose run (or source run) does not exist."""
    problems = []
    for table, column in _run_columns():
        if table.name == Trajectory.__tablename__:
            continue  # counted per run in one scan by _row_problems
        col = table.c[column]
        q = (
            select(col, func.count())
            .where(col.is_not(None), ~select(Run.run_id).where(Run.run_id == col).exists())
            .group_by(col)
        )
        for run_id, n in conn.execute(q):
            what = "run" if column == "run_id" else "source run"
            problems.append(_orphan_rows(table.name, what, int(run_id), int(n)))
    return problems


def _orphan_rows(table: str, what: str, run_id: int, n: int) -> Problem:
    return Problem(ORPHAN_ROWS, run_id, None, None, f"{n:,} rows of {table} name {what} {run_id}, which does not exist")


def _read_artifacts(conn: Connection, run_id: int | None) -> list[_ArtifactRow]:
    q = select(Artifact.run_id, Sample.batch_index, Artifact.path, Artifact.sha256, Artifact.n_bytes).outerjoin(
        Sample, (Sample.run_id == Artifact.run_id) & (Sample.image_id == Artifact.image_id)
    )
    if run_id is not None:
        q = q.where(Artifact.run_id == run_id)
    rows = conn.execute(q.order_by(Artifact.run_id, Artifact.path))
    return [_ArtifactRow(int(r), None if b is None else int(b), p, s, int(n)) for r, b, p, s, n in rows]


def _read_known_files(conn: Connection, runs: dict[int, _Run]) -> set[str]:
    """Paths (relative to the root) that must stay: every artifact file, existing detector runs' checkpoints."""
    known = {_normal(p) for (p,) in conn.execute(select(Artifact.path))}
    known.update(f"run-{r}/{DETECTOR_CHECKPOINT}" for r, run in runs.items() if run.kind == "detector")
    return known


def _normal(path: str) -> str:
    return Path(os.path.normpath(path)).as_posix()


def _missing_images(conn: Connection, batch: _Batch) -> str:
    """The images of ``batch`` short of the rows their samples record: "image 7: 4 of 5 rows, …"."""
    have = dict(
        conn.execute(
            select(Trajectory.image_id, func.count())
            .where(
                Trajectory.row_id.between(batch.first_row, batch.first_row + batch.n_rows - 1),
                Trajectory.run_id == batch.run_id,
            )
            .group_by(Trajectory.image_id)
        ).all()
    )
    want = conn.execute(
        select(Sample.image_id, Sample.n_iterations)
        .where(Sample.run_id == batch.run_id, Sample.batch_index == batch.batch_index)
        .order_by(Sample.image_id)
    ).all()
    short = [f"image {i}: {have.get(i, 0)} of {n} rows" for i, n in want if have.get(i, 0) < n]
    more = f", {len(short) - MAX_NAMED_IMAGES} more images" if len(short) > MAX_NAMED_IMAGES else ""
    return ", ".join(short[:MAX_NAMED_IMAGES]) + more


# --- rows ----------------------------------------------------------------------------------------


def _batch_problems(
    conn: Connection, batch: _Batch, samples: dict[tuple[int, int], tuple[int, int]]
) -> Iterator[Problem]:
    key = (batch.run_id, batch.batch_index)
    if batch.found_rows < batch.n_rows:
        named = _missing_images(conn, batch)
        yield Problem(
            MISSING_TRAJECTORY,
            *key,
            None,
            f"{batch.n_rows - batch.found_rows:,} of its {batch.n_rows:,} trajectory rows are missing"
            + (f" ({named})" if named else ""),
        )
    n_samples, recorded = samples.get(key, (0, 0))
    if n_samples != batch.n_images:
        kind = MISSING_SAMPLES if n_samples < batch.n_images else STRAY_SAMPLES
        yield Problem(kind, *key, None, f"{n_samples} sample rows, the batch has {batch.n_images} images")
    elif recorded != batch.n_rows:
        yield Problem(
            ROWS_MISMATCH, *key, None, f"its samples record {recorded:,} trajectory rows, the batch {batch.n_rows:,}"
        )


def _row_problems(conn: Connection, snap: _Snapshot, run_id: int | None) -> Iterator[Problem]:
    samples = _read_samples(conn, run_id)
    for batch in snap.batches:
        yield from _batch_problems(conn, batch, samples)
    committed = {(b.run_id, b.batch_index) for b in snap.batches}
    for (r, b), (n, _) in sorted(samples.items()):
        if (r, b) not in committed and r in snap.runs:
            yield Problem(STRAY_SAMPLES, r, b, None, f"{n} sample rows of a batch that was never committed")
    for r, b in _read_uncommitted_plan(conn, run_id):
        yield Problem(MISSING_BATCH, r, b, None, "planned but never committed, yet the run is finished")
    found: dict[int, int] = {}
    for batch in snap.batches:
        found[batch.run_id] = found.get(batch.run_id, 0) + batch.found_rows
    for r, total in sorted(_read_trajectory_totals(conn, run_id).items()):
        if r not in snap.runs:
            yield _orphan_rows(Trajectory.__tablename__, "run", r, total)
        elif total > found.get(r, 0):
            yield Problem(
                EXTRA_TRAJECTORY,
                r,
                None,
                None,
                f"{total - found.get(r, 0):,} trajectory rows lie outside the run's committed batches",
            )


def _read_snapshot(store: Store, run_id: int | None) -> _Snapshot:
    with _snapshot(store) as conn:
        runs = _read_runs(conn, None)
        snap = _Snapshot(runs=runs, batches=_read_batches(conn, run_id))
        snap.problems.extend(_row_problems(conn, snap, run_id))
        if run_id is None:
            snap.problems.extend(_read_orphan_rows(conn))
        snap.artifacts = _read_artifacts(conn, run_id)
        snap.known_files = _read_known_files(conn, runs)
    return snap


# --- files ---------------------------------------------------------------------------------------


def _check_file(root: Path, art: _ArtifactRow, hash_files: bool) -> Problem | None:
    where = (art.run_id, art.batch_index, art.path)
    path = root / art.path
    try:
        st = path.stat()
    except FileNotFoundError:
        return Problem(MISSING_FILE, *where, "no such file under the artifact root")
    except OSError as exc:
        return Problem(UNREADABLE_FILE, *where, f"{path}: {exc.strerror or exc}")
    if not path.is_file():
        return Problem(MISSING_FILE, *where, "not a regular file")
    if st.st_size != art.n_bytes:
        return Problem(SIZE_MISMATCH, *where, f"{st.st_size:,} bytes, the store recorded {art.n_bytes:,}")
    if hash_files:
        try:
            digest = sha256_of(path)
        except OSError as exc:
            return Problem(UNREADABLE_FILE, *where, f"{path}: {exc.strerror or exc}")
        if digest != art.sha256:
            return Problem(HASH_MISMATCH, *where, f"sha256 {digest[:16]}…, the store recorded {art.sha256[:16]}…")
    return None


def _check_chunk(root: Path, chunk: Sequence[_ArtifactRow], hash_files: bool) -> list[Problem]:
    return [p for art in chunk if (p := _check_file(root, art, hash_files)) is not None]


def _file_problems(
    root: Path, arts: Sequence[_ArtifactRow], *, hash_files: bool, threads: int, progress: CheckProgress | None
) -> list[Problem]:
    """Each artifact file's existence, size and (``hash_files``) sha256, checked by ``threads`` threads."""
    if progress is not None:
        progress.start(files=len(arts), hashing=hash_files)
    problems: list[Problem] = []
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="advdb-check") as pool:
        chunks = [arts[i : i + FILES_PER_TASK] for i in range(0, len(arts), FILES_PER_TASK)]
        futures = {pool.submit(_check_chunk, root, chunk, hash_files): len(chunk) for chunk in chunks}
        for future in as_completed(futures):
            problems.extend(future.result())
            if progress is not None:
                progress.advance(futures[future])
    return problems


def _run_dirs(root: Path) -> list[str]:
    """The names of the root's ``run-<id>`` folders (links not followed)."""
    try:
        return sorted(e.name for e in os.scandir(root) if RUN_DIR.fullmatch(e.name) and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read the artifact root {root}: {exc.strerror or exc}") from None


def _scan(root: Path, run_id: int | None) -> dict[str, os.stat_result]:
    """The files (links not followed) in the root's ``run-<id>`` folders, by path relative to the root."""
    found: dict[str, os.stat_result] = {}
    for name in _run_dirs(root):
        if run_id is not None and name != f"run-{run_id}":
            continue
        for folder, _dirs, files in os.walk(root / name):
            for file in files:
                path = Path(folder, file)
                try:
                    found[path.relative_to(root).as_posix()] = path.lstat()
                except FileNotFoundError:
                    continue  # removed meanwhile
    return found


def _run_of(rel: str) -> int | None:
    m = RUN_DIR.fullmatch(rel.split("/", 1)[0])
    return int(m.group(1)) if m else None


def _strays(
    scanned: dict[str, os.stat_result], known: set[str], runs: dict[int, _Run], live: set[int]
) -> list[StrayFile]:
    strays = []
    for rel, st in sorted(scanned.items()):
        run_id = _run_of(rel)
        if rel in known or run_id in live:
            continue
        if TEMP_FILE.search(rel):
            reason = "a temporary file left by a writer"
        elif run_id not in runs:
            reason = f"run {run_id} does not exist"
        else:
            reason = "no artifact row references it"
        strays.append(StrayFile(rel, run_id, st.st_size, reason))
    return strays


def _live_runs(store: Store, runs: dict[int, _Run]) -> set[int]:
    """Runs a live process is working on: their files may be written before their rows commit."""
    return {r.run_id for r in list_runs(store, status="running") if r.run_id in runs and is_live(store, r)}


# --- the columnar copy ---------------------------------------------------------------------------


def _read_copy(copy: ColumnarCopy) -> tuple[list[tuple[int, str, int, int]], dict[int, int]] | str:
    """The copy's mirrored batches and its rows per run, or why they could not be read."""
    import duckdb

    try:
        con = duckdb.connect(str(copy.path), read_only=True)
    except duckdb.Error as exc:
        return f"not checked: {str(exc).splitlines()[0]}"
    try:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version is None or version[0] != str(copy.schema_version):
            return "not checked: written by another advdb version (rebuilt by the next query)"
        mirrored = con.execute("SELECT run_id, run_created, batch_index, n_rows FROM mirrored").fetchall()
        counts = dict(con.execute("SELECT run_id, count(*) FROM trajectory GROUP BY run_id").fetchall())
    except duckdb.Error as exc:
        return f"not checked: {str(exc).splitlines()[0]}"
    finally:
        con.close()
    return [(int(r), str(c), int(b), int(n)) for r, c, b, n in mirrored], {int(r): int(n) for r, n in counts.items()}


def _same_run(created: str, run: _Run) -> bool:
    """Whether the copy's run (``created``: DuckDB's text of its creation time) is the store's run of that id."""
    head, _, fraction = created.partition(".")
    try:  # DuckDB trims the fraction's zeros ("….12"), which fromisoformat takes only from Python 3.11
        return (
            dt.datetime.fromisoformat(head + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")) == run.created_at
        )
    except ValueError:
        return False


def _columnar_problems(copy: ColumnarCopy, snap: _Snapshot, run_id: int | None) -> tuple[list[Problem], str]:
    """Per run the copy holds (and the store still has): its rows against the store's rows of the same batches."""
    read = _read_copy(copy)
    if isinstance(read, str):
        return [], read
    mirrored, counts = read
    store_batches = {(b.run_id, b.batch_index): b for b in snap.batches}
    copied: dict[int, list[tuple[int, int]]] = {}
    for r, created, b, n in mirrored:
        if (run_id is None or r == run_id) and r in snap.runs and _same_run(created, snap.runs[r]):
            copied.setdefault(r, []).append((b, n))
    for r in counts:
        if (run_id is None or r == run_id) and r in snap.runs and r not in {m[0] for m in mirrored}:
            copied.setdefault(r, [])
    problems = []
    for r, batches in sorted(copied.items()):
        gone = [b for b, _ in batches if (r, b) not in store_batches]
        in_store = sum(store_batches[(r, b)].found_rows for b, _ in batches if (r, b) in store_batches)
        if gone or counts.get(r, 0) != in_store:
            lost = f"; batches {', '.join(map(str, sorted(gone)))} are not in the store" if gone else ""
            problems.append(
                Problem(
                    COLUMNAR_MISMATCH,
                    r,
                    None,
                    str(copy.path),
                    f"the copy holds {counts.get(r, 0):,} rows of the run, the store {in_store:,} in the "
                    f"{len(batches)} batches it copied{lost}",
                )
            )
    return problems, "disagrees" if problems else "agrees"


# --- the two entry points ------------------------------------------------------------------------


def default_threads() -> int:
    return min(16, 2 * (os.cpu_count() or 1))


def _order(p: Problem) -> tuple[int, int, int, str]:
    run = p.run_id if p.run_id is not None else -1
    return (run, p.batch_index if p.batch_index is not None else -1, KINDS.index(p.kind), p.path or "")


def check_store(
    store: Store,
    *,
    run_id: int | None = None,
    hash_files: bool = True,
    columnar: ColumnarCopy | None = None,
    threads: int | None = None,
    progress: CheckProgress | None = None,
) -> CheckReport:
    """Check the store (or one run of it): rows, files, orphans and the columnar copy (module docstring)."""
    t0 = time.perf_counter()
    if run_id is not None:
        get_run(store, run_id)  # a NotFoundError naming the run
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    root = store.location.artifacts_dir
    snap = _read_snapshot(store, run_id)
    problems = list(snap.problems)
    problems += _file_problems(
        root, snap.artifacts, hash_files=hash_files, threads=threads or default_threads(), progress=progress
    )
    live = _live_runs(store, snap.runs)
    for stray in _strays(_scan(root, run_id), snap.known_files, snap.runs, live):
        problems.append(Problem(ORPHAN_FILE, stray.run_id, None, stray.path, f"{stray.reason} ({stray.n_bytes:,} B)"))
    notes = [f"run {r} is live: files its writer has not committed yet are not counted as orphans" for r in live]
    state = "absent"
    if columnar is not None and columnar.path.exists():
        found, state = _columnar_problems(columnar, snap, run_id)
        problems += found
    return CheckReport(
        problems=tuple(sorted(problems, key=_order)),
        runs=1 if run_id is not None else len(snap.runs),
        batches=len(snap.batches),
        trajectory_rows=sum(b.found_rows for b in snap.batches),
        files=len(snap.artifacts),
        hashed=hash_files,
        columnar=state,
        notes=tuple(notes),
        seconds=time.perf_counter() - t0,
    )


def _check_owner(store: Store, root: Path) -> None:
    found = _read_marker(root)
    if found is None:
        raise StoreError(
            f"the artifact root {root} has no marker file naming this store: nothing deleted "
            "(check `advdb db artifact-root` and ADVDB_ARTIFACTS_DIR)"
        )
    if found != store_id(store):
        raise StoreError(f"{root} is the artifact root of another advdb store: nothing deleted")


def _still_referenced(store: Store, paths: Iterable[str]) -> set[str]:
    """Which of ``paths`` an artifact row references now (checked again just before deleting)."""
    wanted = sorted(paths)
    out: set[str] = set()
    with _snapshot(store) as conn:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            out.update(_normal(p) for (p,) in conn.execute(select(Artifact.path).where(Artifact.path.in_(chunk))))
    return out


def _delete(root: Path, strays: list[StrayFile], scanned: dict[str, os.stat_result], keep: set[str]) -> list[str]:
    """Unlink each stray file that is not in ``keep`` and has not changed since the scan; returns failures."""
    failures = []
    for stray in strays:
        if stray.path in keep:
            continue
        path, before = root / stray.path, scanned[stray.path]
        try:
            now = path.lstat()
            if (now.st_ino, now.st_size, now.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns):
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror or exc}")
    return failures


def _remove_empty_dirs(root: Path, run_dirs: Iterable[str]) -> int:
    removed = 0
    for name in sorted(run_dirs):
        for folder, _dirs, _files in os.walk(root / name, topdown=False):
            try:
                os.rmdir(folder)
                removed += 1
            except OSError:
                continue  # not empty (or gone)
    return removed


def _runs_now(store: Store) -> dict[int, _Run]:
    with _snapshot(store) as conn:
        return _read_runs(conn, None)


def _remove(
    store: Store, root: Path, strays: list[StrayFile], scanned: dict[str, os.stat_result]
) -> tuple[set[str], int]:
    """Delete ``strays`` but those referenced or live by now; returns the paths kept and the folders removed."""
    live = _live_runs(store, _runs_now(store))  # runs created since the scan (SQLite reuses ids) count too
    keep = _still_referenced(store, (s.path for s in strays)) | {s.path for s in strays if s.run_id in live}
    failures = _delete(root, strays, scanned, keep)
    removed = _remove_empty_dirs(root, [d for d in _run_dirs(root) if _run_of(d) not in live])
    if failures:
        raise StoreError(f"could not delete {len(failures)} stray files, e.g. {failures[0]}")
    return keep, removed


def collect_garbage(store: Store, *, delete: bool = False) -> GcReport:
    """The files under the artifact root that no artifact row references; removed when ``delete``."""
    root = store.location.artifacts_dir
    if delete and root.is_dir():
        _check_owner(store, root)
    scanned = _scan(root, None)
    with _snapshot(store) as conn:
        runs = _read_runs(conn, None)
        known = _read_known_files(conn, runs)
    live = _live_runs(store, runs)
    strays = _strays(scanned, known, runs, live)
    removed = 0
    if delete and root.is_dir():
        keep, removed = _remove(store, root, strays, scanned)
        strays = [s for s in strays if s.path not in keep]
    return GcReport(
        root=root,
        files=tuple(strays),
        n_bytes=sum(s.n_bytes for s in strays),
        deleted=delete,
        removed_dirs=removed,
        live_runs=tuple(sorted(live)),
    )
