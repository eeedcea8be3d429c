"""An incremental columnar copy of the trajectory table, so reports stay interactive at scale.

DuckDB scans the SQLite file at about 10 M rows/s here: 10 s for a 100 M-row store. Reports
instead read a DuckDB file that holds the trajectory rows of every committed batch. Before
each query session it is refreshed from the store — the SQL store stays the source of
truth and the copy is never stale:

* batches committed since the last refresh are copied (each batch's rows are a range of
  ``row_id``, read through ``sqlite_query`` / ``postgres_query``: only the new rows are read);
* runs that no longer exist in the store (deleted, or an id reused by a new run) are
  dropped from the copy;
* the copy is checked first (:func:`verify`): per run, its row count against the row
  counts of the batches it copied, and its row count and ``z_target``/``l2`` sums against
  its per-iteration sums; a copy that does not match is rebuilt, and the query session
  says so.

Query sessions read the copy attached READ_ONLY (:func:`open_copy`): nothing a query does
can change it.

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

from advdb.config import advdb_home
from advdb.store.columns import TRAJECTORY_COLUMNS
from advdb.store.location import StoreLocation
from advdb.store.runs import merge_ranges
from advdb.vocabulary import TRAJECTORY_MEASURES

ALIAS = "columnar"
SCHEMA_VERSION = 4

# Per run and iteration: the count and sums of the columns reports average over iterations
# (Figs. 1–4). Sums are exact to merge, so the per-iteration means of a 100 M-row store cost
# a scan of a few thousand rows instead of the whole trajectory table.
SUM_COLUMNS: tuple[str, ...] = TRAJECTORY_MEASURES
SUMS_SELECT = "SELECT run_id, iteration, count(*) AS n, " + ", ".join(f"sum({c}) AS sum_{c}" for c in SUM_COLUMNS)


def target_minima_select(trajectory: str, samples: str) -> str:
    """Per image with a row at its target: those rows' count and smallest L∞/L2/L1 perturbation.

    What the perturbation-budget curves and the worst case over attacks read (each image's
    smallest successful perturbation along its path), so they scan a row per image, not the
    whole trajectory.
    """
    return (
        "SELECT t.run_id, t.image_id, count(*) AS n, min(t.linf) AS min_linf, min(t.l2) AS min_l2, "
        f"min(t.l1) AS min_l1 FROM {trajectory} t JOIN {samples} s ON s.run_id = t.run_id "
        "AND s.image_id = t.image_id WHERE t.pred = s.target GROUP BY t.run_id, t.image_id"
    )


def target_counts_select(trajectory: str, samples: str) -> str:
    """Per run and iteration: the rows at the target, and how many of them are an image's last row.

    What the iteration-budget curves read. Counts are exact to merge (sum over rows).
    """
    return (
        "SELECT t.run_id, t.iteration, count(*) AS n, count(*) FILTER (WHERE t.iteration = s.n_iterations - 1) "
        f"AS ended FROM {trajectory} t JOIN {samples} s ON s.run_id = t.run_id AND s.image_id = t.image_id "
        "WHERE t.pred = s.target GROUP BY t.run_id, t.iteration"
    )


#: The copy's tables derived from its trajectory rows, recomputed for the runs a refresh touches.
DERIVED_TABLES: tuple[str, ...] = ("iteration_sums", "target_minima", "target_counts")

_DDL = f"""
CREATE TABLE IF NOT EXISTS {ALIAS}.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.mirrored (run_id INTEGER, run_created VARCHAR, batch_index INTEGER, n_rows BIGINT);
CREATE TABLE IF NOT EXISTS {ALIAS}.iteration_sums (
    run_id INTEGER, iteration INTEGER, n BIGINT, {", ".join(f"sum_{c} DOUBLE" for c in SUM_COLUMNS)}
);
CREATE TABLE IF NOT EXISTS {ALIAS}.target_minima (
    run_id INTEGER, image_id INTEGER, n BIGINT, min_linf FLOAT, min_l2 FLOAT, min_l1 FLOAT
);
CREATE TABLE IF NOT EXISTS {ALIAS}.target_counts (run_id INTEGER, iteration INTEGER, n BIGINT, ended BIGINT);
CREATE TABLE IF NOT EXISTS {ALIAS}.trajectory (
    run_id INTEGER, image_id INTEGER, iteration INTEGER, search_step SMALLINT, pred SMALLINT,
    {", ".join(f"{c} FLOAT" for c in TRAJECTORY_MEASURES)}
);
"""


def columnar_path(location: StoreLocation) -> Path:
    if location.sqlite_path is not None:
        p = location.sqlite_path
        return p.with_name(p.stem + "-columnar.duckdb")
    key = hashlib.sha256(location.masked.encode()).hexdigest()[:16]
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
    rebuilt: str | None = None  # why the copy was rebuilt, if it was


def _raw(location: StoreLocation, sql: str) -> str:
    fn = "sqlite_query" if location.backend == "sqlite" else "postgres_query"
    return f"{fn}('store', '{sql.replace(chr(39), chr(39) * 2)}')"


def _quoted_path(location: StoreLocation) -> str:
    return str(columnar_path(location)).replace(chr(39), chr(39) * 2)


def _reset(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("trajectory", "mirrored", *DERIVED_TABLES, "meta"):
        con.execute(f"DROP TABLE IF EXISTS {ALIAS}.{table}")
    con.execute(_DDL)
    con.execute(f"INSERT INTO {ALIAS}.meta VALUES ('schema', '{SCHEMA_VERSION}')")


def attach(con: duckdb.DuckDBPyConnection, location: StoreLocation) -> bool:
    """Attach the columnar copy read-write (creating it); False if it cannot be opened now."""
    try:
        con.execute(f"ATTACH '{_quoted_path(location)}' AS {ALIAS}")
        con.execute(_DDL)
        version = con.execute(f"SELECT value FROM {ALIAS}.meta WHERE key = 'schema'").fetchone()
    except duckdb.Error:
        return False  # locked by another process, not writable or damaged: read the store directly
    if version is None or version[0] != str(SCHEMA_VERSION):
        _reset(con)
    return True


def verify(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the attached copy does not match what it copied, or None when it does.

    Per run: the rows of the copy against the row counts of the batches it copied, and the
    count and ``z_target``/``l2`` sums of the rows against the per-iteration sums.
    """
    row = con.execute(f"""
        WITH rows AS (SELECT run_id, count(*) AS n, sum(z_target) AS z, sum(l2) AS l2
                      FROM {ALIAS}.trajectory GROUP BY 1),
             copied AS (SELECT run_id, sum(n_rows) AS n FROM {ALIAS}.mirrored GROUP BY 1),
             sums AS (SELECT run_id, sum(n) AS n, sum(sum_z_target) AS z, sum(sum_l2) AS l2
                      FROM {ALIAS}.iteration_sums GROUP BY 1),
             minima AS (SELECT run_id, sum(n) AS n FROM {ALIAS}.target_minima GROUP BY 1),
             counts AS (SELECT run_id, sum(n) AS n FROM {ALIAS}.target_counts GROUP BY 1)
        SELECT run_id, coalesce(rows.n, 0), coalesce(copied.n, 0), coalesce(sums.n, 0),
               coalesce(minima.n, 0), coalesce(counts.n, 0)
        FROM copied FULL JOIN rows USING (run_id) FULL JOIN sums USING (run_id)
             FULL JOIN minima USING (run_id) FULL JOIN counts USING (run_id)
        WHERE coalesce(rows.n, 0) <> coalesce(copied.n, 0) OR coalesce(rows.n, 0) <> coalesce(sums.n, 0)
           OR coalesce(minima.n, 0) <> coalesce(counts.n, 0)
           OR abs(coalesce(rows.z, 0) - coalesce(sums.z, 0)) > 1e-6 * (1 + abs(coalesce(sums.z, 0)))
           OR abs(coalesce(rows.l2, 0) - coalesce(sums.l2, 0)) > 1e-6 * (1 + abs(coalesce(sums.l2, 0)))
        LIMIT 1""").fetchone()
    if row is None:
        return None
    run_id, have, copied, summed, minima, counts = row
    return (
        f"run {run_id} has {have:,} rows in the copy, {copied:,} were copied and its sums count {summed:,}; "
        f"its rows at the target count {minima:,} per image and {counts:,} per iteration"
    )


def open_copy(con: duckdb.DuckDBPyConnection, location: StoreLocation) -> RefreshStats | None:
    """Check and refresh the copy, then attach it READ_ONLY; None when it cannot be opened now."""
    if not attach(con, location):
        return None
    try:
        problem = verify(con)
        if problem is not None:
            _reset(con)
        stats = refresh(con, location)
        stats.rebuilt = problem
    finally:
        con.execute(f"DETACH {ALIAS}")
    try:
        con.execute(f"ATTACH '{_quoted_path(location)}' AS {ALIAS} (READ_ONLY)")
    except duckdb.Error:
        return None  # another process took it for writing meanwhile: read the store directly
    return stats


BULK_SHARE = 0.2  # copying more than this share of the store's rows: one parallel scan


RANGES_PER_QUERY = 100


def _copy(
    con: duckdb.DuckDBPyConnection,
    location: StoreLocation,
    new: dict[tuple[int, str], list[int]],
    ranges: list[tuple[int, int]],
) -> int:
    """Copy the trajectory rows of the ``new`` batches (whose row ids are ``ranges``); returns the row count.

    Many new rows (a first build): one parallel DuckDB scan of the store's table, semi-joined
    with the new (run, image) pairs. A few new batches: their ``row_id`` ranges, read through
    the store's own rowid (SQLite) or BRIN index (PostgreSQL).
    """
    cols = ", ".join(TRAJECTORY_COLUMNS)
    pairs = [(r, b) for (r, _), bs in new.items() for b in bs]
    con.execute("CREATE OR REPLACE TEMP TABLE _new_batches (run_id INTEGER, batch_index INTEGER)")
    con.executemany("INSERT INTO _new_batches VALUES (?, ?)", pairs)
    n_new, n_all = con.execute(
        "SELECT coalesce(sum(b.n_rows) FILTER (WHERE nb.run_id IS NOT NULL), 0), coalesce(sum(b.n_rows), 0) "
        "FROM store.batches b LEFT JOIN _new_batches nb USING (run_id, batch_index)"
    ).fetchone() or (0, 0)
    if n_all and n_new > BULK_SHARE * n_all:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _new_pairs AS SELECT ri.run_id, ri.image_id "
            "FROM store.run_images ri JOIN _new_batches USING (run_id, batch_index)"
        )
        con.execute(
            f"INSERT INTO {ALIAS}.trajectory SELECT {cols} FROM store.trajectory t SEMI JOIN _new_pairs p USING "
            "(run_id, image_id)"
        )
        return int(n_new)
    total = 0
    for i in range(0, len(ranges), RANGES_PER_QUERY):
        where = " OR ".join(f"row_id BETWEEN {int(a)} AND {int(b)}" for a, b in ranges[i : i + RANGES_PER_QUERY])
        src = _raw(location, f"SELECT {cols} FROM trajectory WHERE {where}")
        row = con.execute(f"INSERT INTO {ALIAS}.trajectory SELECT {cols} FROM {src}").fetchone()
        total += int(row[0]) if row else 0
    return total


def _derive(con: duckdb.DuckDBPyConnection, runs: list[int]) -> None:
    """Recompute the derived tables of ``runs`` from their rows in the copy (targets from the store's samples)."""
    for table in DERIVED_TABLES:
        con.execute(f"DELETE FROM {ALIAS}.{table} WHERE list_contains($runs, run_id)", {"runs": runs})
    rows = f"(SELECT * FROM {ALIAS}.trajectory WHERE list_contains($runs, run_id))"
    con.execute(
        f"INSERT INTO {ALIAS}.iteration_sums {SUMS_SELECT} FROM {rows} GROUP BY run_id, iteration", {"runs": runs}
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _targets AS SELECT run_id, image_id, target, n_iterations "
        "FROM store.samples WHERE list_contains($runs, run_id)",
        {"runs": runs},
    )
    for table, select in (("target_minima", target_minima_select), ("target_counts", target_counts_select)):
        con.execute(f"INSERT INTO {ALIAS}.{table} {select(rows, '_targets')}", {"runs": runs})
    con.execute("DROP TABLE _targets")


def refresh(con: duckdb.DuckDBPyConnection, location: StoreLocation) -> RefreshStats:
    """Bring the copy up to date with the store's committed batches."""
    t0 = time.perf_counter()
    stats = RefreshStats()
    store_batches = con.execute(
        "SELECT b.run_id, CAST(r.created_at AS VARCHAR) AS created, b.batch_index, b.first_row, b.n_rows "
        "FROM store.batches b JOIN store.runs r USING (run_id)"
    ).fetchall()
    have = con.execute(f"SELECT run_id, run_created, batch_index FROM {ALIAS}.mirrored").fetchall()
    store_runs = {(r, c) for r, c, *_ in store_batches}
    have_runs = {(r, c) for r, c, _ in have}
    # runs deleted from the store, or whose id now names another run (SQLite reuses ids)
    gone = {r for r, c in have_runs if (r, c) not in store_runs}
    con.execute("BEGIN")
    try:
        for run_id in sorted(gone):
            for table in ("trajectory", "mirrored", *DERIVED_TABLES):
                con.execute(f"DELETE FROM {ALIAS}.{table} WHERE run_id = ?", [run_id])
        stats.dropped_runs = len(gone)
        have_set = {(r, c, b) for r, c, b in have if r not in gone}
        new: dict[tuple[int, str], list[int]] = {}
        ranges: list[tuple[int, int]] = []
        counts: dict[tuple[int, int], int] = {}
        for r, c, b, first_row, n_rows in store_batches:
            if (r, c, b) not in have_set:
                new.setdefault((r, c), []).append(b)
                counts[(r, b)] = int(n_rows)
                if n_rows:
                    ranges.append((first_row, first_row + n_rows - 1))
        if new:
            stats.rows = _copy(con, location, new, merge_ranges(ranges))
            con.executemany(
                f"INSERT INTO {ALIAS}.mirrored VALUES (?, ?, ?, ?)",
                [[r, c, b, counts[(r, b)]] for (r, c), bs in sorted(new.items()) for b in bs],
            )
            stats.batches = sum(len(bs) for bs in new.values())
            _derive(con, sorted({r for r, _ in new}))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    stats.seconds = time.perf_counter() - t0
    return stats
