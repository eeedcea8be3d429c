"""What the sealed SQL layer costs: first-query latency of a query session, before and after the seal.

    python benchmarks/sql_guard.py --rows 1e6 [--db URL] [--repeat 3]

User SQL runs in a sealed DuckDB connection over a snapshot of the store's tables (the trajectory
read from the columnar copy) instead of the connection that has the store attached
(:mod:`advdb.analytics.query`). This prints, on a synthetic store built like
``benchmarks/reports.py`` builds it (eight runs, 500 iterations), the seconds from nothing
to the first answer:

* ``attached``: the store attached through the scanner, the columnar copy attached, views
  made, the query run in that connection (what ``advdb sql`` did before the seal);
* ``sealed``: :class:`QuerySession` as it is now (the same, plus the snapshot of every table
  but the trajectory, and the sealed connection), the query through :meth:`QuerySession.query`;
* ``store.trajectory``: the first query that names the store's own trajectory (its rows are
  copied into the snapshot then), and the report ``table1`` and ``fig2`` on a sealed session.

Each figure is the median of ``--repeat`` sessions after one warm-up session (which
brings the columnar copy up to date).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reports import fill  # type: ignore[import-not-found]  # noqa: E402

from advdb.analytics.query import QuerySession, checked_location  # noqa: E402
from advdb.store.location import StoreLocation  # noqa: E402

FIRST = "SELECT r.loss, count(*) AS n, avg(s.final_l2) AS l2 FROM samples s JOIN runs r USING (run_id) GROUP BY 1"
AGGREGATE = "SELECT run_id, avg(l2) AS l2, count(*) AS n FROM trajectory GROUP BY run_id"


def attached(location: StoreLocation, sql: str) -> None:
    """The session as it was before the seal: one connection with the store attached."""
    from advdb.analytics import columnar as col
    from advdb.store.duck import open_duck

    con = open_duck(location, read_only=True)
    try:
        refresh = col.open_copy(con, location)
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'store'"
        ).fetchall():
            source = f"{col.ALIAS}.trajectory" if table == "trajectory" and refresh else f'store."{schema}"."{table}"'
            con.execute(f'CREATE TEMP VIEW "{table}" AS SELECT * FROM {source}')
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(sql).to_arrow_table()
    finally:
        con.close()


def sealed(location: StoreLocation, sql: str) -> None:
    with QuerySession(location) as q:
        q.query(sql)


def sealed_report(location: StoreLocation, name: str) -> None:
    from advdb.analytics.reports import build

    with QuerySession(location) as q:
        build(q, name)


def median_seconds(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=1e6)
    ap.add_argument("--db", default=None, help="a store URL (default: a temporary SQLite file)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="advdb-bench-")
    url = args.db or f"sqlite:///{tmp}/bench.db"
    _, total = fill(url, int(args.rows), 500, 250)
    location = checked_location(url)
    sealed(location, FIRST)  # warm-up: builds the columnar copy
    print(f"{url.split(':')[0]}: {total:,} trajectory rows; first answer, median of {args.repeat} sessions:")
    for label, sql in (("small tables", FIRST), ("trajectory aggregate", AGGREGATE)):
        before = median_seconds(partial(attached, location, sql), args.repeat)
        after = median_seconds(partial(sealed, location, sql), args.repeat)
        print(f"  {label:22s} attached {before:6.3f} s   sealed {after:6.3f} s   cost {after - before:+.3f} s")
    direct = median_seconds(partial(sealed, location, "SELECT count(*) FROM store.trajectory"), args.repeat)
    print(f"  store.trajectory (rows copied into the snapshot): {direct:.3f} s")
    for name in ("table1", "fig2"):
        seconds = median_seconds(partial(sealed_report, location, name), 1)
        print(f"  report {name} on a sealed session: {seconds:.3f} s")
    if args.db is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("ADVDB_HOME", tempfile.mkdtemp(prefix="advdb-home-"))
    import matplotlib

    matplotlib.use("Agg")
    main()
