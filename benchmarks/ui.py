"""`advdb ui` page times: every page on a store, through a real HTTP client.

    python benchmarks/ui.py --rows 10e6            # a synthetic 10 M-row store (benchmarks/reports.py's)
    python benchmarks/ui.py --db sqlite:///advdb.db   # an existing store (e.g. after `advdb reproduce`)

Prints each page's seconds: its first request (a figure is drawn then, and cached per store
version) and the median of --repeat, after a first request that opens the session and brings
the columnar copy up to date. Targets: every page < 1 s on the digits
study's store; the runs list and the trajectory explorer < 2 s on a 10 M-row store.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from starlette.testclient import TestClient

from advdb.analytics import run_sql
from advdb.analytics.query import checked_location
from advdb.web import create_app


def pages(url: str) -> list[str]:
    loc = checked_location(url)
    sql = (
        "SELECT run_id FROM runs JOIN datasets USING (dataset_id) "
        "WHERE runs.kind = 'attack' AND runs.loss IS NOT NULL AND datasets.kind <> 'circles' ORDER BY 1 DESC"
    )
    runs = [r["run_id"] for r in run_sql(loc, sql).to_pylist()]
    if not runs:
        raise SystemExit("the store has no attack runs")
    a, b = runs[0], runs[min(1, len(runs) - 1)]
    return [
        "/",
        "/?sort=loss&desc=1",
        f"/runs/{a}",
        f"/explore?runs={a}",
        f"/explore?runs={a},{b}",
        f"/compare?runs={a},{b}",
        "/reports",
        "/reports/table1",
        "/reports/fig3",
        "/reports/fig3.png",
        "/sql?q=SELECT+count(*)+FROM+trajectory",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="an existing store [default: a new synthetic one]")
    ap.add_argument("--rows", type=float, default=10e6, help="rows of the synthetic store")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    url = args.db
    if url is None:
        from reports import fill  # benchmarks/reports.py

        url = f"sqlite:///{tempfile.mkdtemp(prefix='advdb-bench-ui-')}/bench.db"
        rate, total = fill(url, int(args.rows), args.iterations, 250)
        print(f"synthetic store: {total:,} trajectory rows ({rate:,.0f} rows/s)")
    with TestClient(create_app(checked_location(url))) as client:
        t0 = time.perf_counter()
        client.get("/")
        print(
            f"first request (opens the session, brings the columnar copy up to date): {time.perf_counter() - t0:.2f} s"
        )
        for page in pages(url):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                status = client.get(page).status_code
                times.append(time.perf_counter() - t0)
            print(f"  {page:42s} first {times[0]:6.3f} s, median {statistics.median(times):6.3f} s  (HTTP {status})")


if __name__ == "__main__":
    main()
