"""An incremental columnar copy of the trajectory table, so reports stay interactive at scale.

DuckDB scans the SQLite file at about 10 M rows/s here: 10 s for a 100 M-row store. Reports
instead read a DuckDB file that holds the trajectory rows of every committed batch. Before
each query session it is refreshed from the store — the SQL store stays the source of
truth and the copy is never stale:

* batches committed since the last refresh are copied (one indexed query per run through
  ``sqlite_query`` / ``postgres_query``, so only the new rows are read);
* runs that no longer exist in the store (deleted, or an id reused by a new run) are
  dropped from the copy.

The file lives beside a SQLite store (``<store>-columnar.duckdb``) or, for PostgreSQL, in
``$ADVDB_HOME/columnar/``. It is a cache: deleting it only costs a rebuild.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from advdb.config import StoreLocation, advdb_home
from advdb.store.models import TRAJECTORY_COLUMNS

ALIAS = "columnar"
SCHEMA_VERSION = 1

_DDL = f"""
CREATE TABLE IF NOT EXISTS {ALIAS}.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.mirrored (run_id INTEGER, run_created VARCHAR, batch_index INTEGER);
CREATE TABLE IF NOT EXISTS {ALIAS}.trajectory (
    run_id INTEGER, image_id INTEGER, iteration INTEGER, search_step SMALLINT, pred SMALLINT,
    {", ".join(f"{c} FLOAT" for c in TRAJECTORY_COLUMNS[5:])}
);
"""


def columnar_path(location: StoreLocation) -> Path:
    if location.sqlite_path is not None:
        p = location.sqlite_path
        return p.with_name(p.stem + "-columnar.duckdb")
    key = hashlib.sha256(location.url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    d = advdb_home() / "columnar"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.duckdb"


def enabled() -> bool:
    return os.environ.get("ADVDB_COLUMNAR", "1") not in ("0", "false", "no")


@dataclass
class RefreshStats:
    batches: int = 0
    rows: int = 0
    dropped_runs: int = 0
    seconds: float = 0.0


def _raw(location: StoreLocation, sql: str) -> str:
    fn = "sqlite_query" if location.backend == "sqlite" else "postgres_query"
    return f"{fn}('store', '{sql.replace(chr(39), chr(39) * 2)}')"


def attach(con: duckdb.DuckDBPyConnection, location: StoreLocation) -> bool:
    """Attach the columnar copy read-write (creating it); False if it cannot be opened now."""
    path = columnar_path(location)
    try:
        con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {ALIAS}")
    except duckdb.Error:
        return False  # locked by another process, or not writable: read the store directly
    con.execute(_DDL)
    version = con.execute(f"SELECT value FROM {ALIAS}.meta WHERE key = 'schema'").fetchone()
    if version is None or version[0] != str(SCHEMA_VERSION):
        con.execute(f"DELETE FROM {ALIAS}.trajectory; DELETE FROM {ALIAS}.mirrored; DELETE FROM {ALIAS}.meta;")
        con.execute(f"INSERT INTO {ALIAS}.meta VALUES ('schema', '{SCHEMA_VERSION}')")
    return True


def refresh(con: duckdb.DuckDBPyConnection, location: StoreLocation) -> RefreshStats:
    """Bring the copy up to date with the store's committed batches."""
    t0 = time.perf_counter()
    stats = RefreshStats()
    store_batches = con.execute(
        "SELECT b.run_id, CAST(r.created_at AS VARCHAR) AS created, b.batch_index "
        "FROM store.batches b JOIN store.runs r USING (run_id)"
    ).fetchall()
    have = con.execute(f"SELECT run_id, run_created, batch_index FROM {ALIAS}.mirrored").fetchall()
    store_runs = {(r, c) for r, c, _ in store_batches}
    have_runs = {(r, c) for r, c, _ in have}
    gone = {r for r, c in have_runs if (r, c) not in store_runs}
    # a run whose batches are all gone from the store, or whose id now names another run
    gone |= {r for r, c in have_runs if any(r == sr and c != sc for sr, sc in store_runs)}
    con.execute("BEGIN")
    try:
        for run_id in sorted(gone):
            con.execute(f"DELETE FROM {ALIAS}.trajectory WHERE run_id = ?", [run_id])
            con.execute(f"DELETE FROM {ALIAS}.mirrored WHERE run_id = ?", [run_id])
        stats.dropped_runs = len(gone)
        have_set = {(r, c, b) for r, c, b in have if r not in gone}
        new: dict[tuple[int, str], list[int]] = {}
        for r, c, b in store_batches:
            if (r, c, b) not in have_set:
                new.setdefault((r, c), []).append(b)
        all_batches: dict[int, int] = {}
        for r, _, _ in store_batches:
            all_batches[r] = all_batches.get(r, 0) + 1
        cols = ", ".join(TRAJECTORY_COLUMNS)
        for (run_id, created), batches in sorted(new.items()):
            if len(batches) == all_batches[run_id] and not any(r == run_id for r, _, _ in have_set):
                where = f"run_id = {int(run_id)}"
            else:
                where = (f"run_id = {int(run_id)} AND image_id IN (SELECT image_id FROM run_images WHERE run_id = {int(run_id)} "
                         f"AND batch_index IN ({', '.join(str(int(b)) for b in batches)}))")
            src = _raw(location, f"SELECT {cols} FROM trajectory WHERE {where} ORDER BY image_id, iteration")
            n = con.execute(f"INSERT INTO {ALIAS}.trajectory SELECT {cols} FROM {src}").fetchone()
            stats.rows += int(n[0]) if n else 0
            con.executemany(f"INSERT INTO {ALIAS}.mirrored VALUES (?, ?, ?)", [[run_id, created, b] for b in batches])
            stats.batches += len(batches)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    stats.seconds = time.perf_counter() - t0
    return stats
