"""Report speed on big stores: synthetic trajectories for the eight source × mode runs,
written through the ingest API, then `table1`, `fig2`, `fig4`, `curves`, `robustness` and an ad hoc aggregate.

    python benchmarks/reports.py --rows 10e6 [--db URL]      # default: a temporary SQLite file
    python benchmarks/reports.py --rows 100e6 --db sqlite:////big/disk/bench.db --keep

Prints the ingest rate, the time to bring the columnar copy up to date (first query, then
after one more batch), and per-report seconds with the copy (what users get) and straight
over the store (ADVDB_COLUMNAR=0), for comparison. Target: ≤ 5 s per report at 100 M rows; the curve
reports (`curves`, `robustness`: a pass over every trajectory row) ≤ 1 s at 10 M rows. Each image
is at its target (class 1) from a random first success on, as in a real attack.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from advdb.analytics.query import QuerySession
from advdb.analytics.reports import build
from advdb.store import open_store
from advdb.store.catalogue import register_dataset
from advdb.store.columns import SAMPLE_COLUMNS, TRAJECTORY_MEASURES
from advdb.store.ingest import BatchRecord
from advdb.store.runs import create_run, set_status
from advdb.store.writer import BackgroundWriter

SOURCES = ("ce", "ce-sign", "logit", "m-logit")
MODES = ("equal-multiplier", "equal-perturbation")
REPORTS = ("table1", "fig2", "fig4", "curves", "robustness")  # curves, robustness: target ≤ 1 s at 10 M rows
AD_HOC = (
    "SELECT run_id, avg(l2) AS l2, max(z_target) AS z, count(*) AS n FROM trajectory GROUP BY run_id ORDER BY run_id"
)


def batch(run_id: int, b: int, image_ids: np.ndarray, T: int, rng: np.random.Generator) -> BatchRecord:
    n_img = len(image_ids)
    n = n_img * (T + 1)
    it = np.tile(np.arange(T + 1, dtype=np.int32), n_img)
    traj: dict[str, np.ndarray] = {
        "image_id": np.repeat(image_ids.astype(np.int32), T + 1),
        "iteration": it,
        "search_step": np.zeros(n, np.int16),
        "pred": rng.integers(0, 1000, n).astype(np.int16),
    }
    first = rng.integers(1, T, n_img)
    traj["pred"][it >= np.repeat(first, T + 1)] = 1  # at the target (1) from the first success on, as attacks are
    for k in TRAJECTORY_MEASURES:
        traj[k] = rng.random(n, dtype=np.float32)
    samples = {k: rng.random(n_img, dtype=np.float32) for k in SAMPLE_COLUMNS}
    samples.update(
        image_id=image_ids.astype(np.int32),
        batch_index=np.full(n_img, b),
        label=np.zeros(n_img, np.int32),
        target=np.ones(n_img, np.int32),
        final_pred=np.ones(n_img, np.int32),
        first_success_iter=first.astype(np.float64),
        n_iterations=np.full(n_img, T + 1),
    )
    return BatchRecord(run_id=run_id, batch_index=b, trajectory=traj, samples=samples, attack_seconds=1.0)


def fill(url: str, rows: int, T: int, batch_images: int) -> tuple[float, int]:
    images_per_run = max(batch_images, int(rows / 8 / (T + 1)) // batch_images * batch_images)
    with open_store(url) as store:
        _, image_ids = register_dataset(
            store,
            name="bench",
            kind="synthetic",
            fingerprint=f"bench-{images_per_run}",
            labels=np.zeros(images_per_run, np.int64),
            image_shape=[3, 224, 224],
            n_classes=1000,
            synthetic=True,
        )
        runs = [
            create_run(
                store,
                kind="attack",
                config={"benchmark": True},
                loss=loss,
                mode=mode,
                iterations=T,
                n_images=images_per_run,
                synthetic=True,
            ).run_id
            for mode in MODES
            for loss in SOURCES
        ]
        location = store.location
    rng = np.random.default_rng(0)
    total = 0
    t0 = time.perf_counter()
    with BackgroundWriter(location) as w:
        for run_id in runs:  # the work list, as the runner stores it
            pos = np.arange(images_per_run)
            w.insert(
                "run_images",
                {
                    "image_id": image_ids.astype(np.int32),
                    "position": pos.astype(np.int32),
                    "batch_index": (pos // batch_images).astype(np.int32),
                    "label": np.zeros(images_per_run, np.int32),
                    "target": np.ones(images_per_run, np.int32),
                },
                run_id=run_id,
            )
        for run_id in runs:
            for b in range(images_per_run // batch_images):
                rec = batch(run_id, b, image_ids[b * batch_images : (b + 1) * batch_images], T, rng)
                total += rec.n_rows
                w.submit(rec)
    secs = time.perf_counter() - t0
    with open_store(url) as store:
        for r in runs:
            set_status(store, r, "finished")
    return total / secs, total


def timed(fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(url: str, columnar: bool) -> dict[str, float]:
    from advdb.analytics.query import checked_location

    loc = checked_location(url)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    with QuerySession(loc, columnar=columnar) as q:
        out["open+refresh"] = time.perf_counter() - t0
        for name in REPORTS:
            out[name] = timed(lambda n=name: build(q, n))
        out["sql aggregate"] = timed(lambda: q.query(AD_HOC))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=10e6)
    ap.add_argument("--db", default=None)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--batch-images", type=int, default=250)
    ap.add_argument("--keep", action="store_true", help="keep the store (reuse it with --no-fill)")
    ap.add_argument("--no-fill", action="store_true", help="measure an existing store")
    ap.add_argument("--no-direct", action="store_true", help="skip the slow direct-scan comparison")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="advdb-bench-")
    url = args.db or f"sqlite:///{tmp}/bench.db"
    if not args.no_fill:
        rate, total = fill(url, int(args.rows), args.iterations, args.batch_images)
        print(f"{url.split(':')[0]}: {total:,} trajectory rows ingested at {rate:,.0f} rows/s")
    import matplotlib

    matplotlib.use("Agg")
    first = measure(url, columnar=True)
    print("columnar, first session (builds the copy): " + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()))
    steady = measure(url, columnar=True)
    print("columnar, up to date:                      " + ", ".join(f"{k} {v:.2f} s" for k, v in steady.items()))
    if not args.no_direct:
        direct = measure(url, columnar=False)
        print("direct over the store:                     " + ", ".join(f"{k} {v:.2f} s" for k, v in direct.items()))
        for k in (*REPORTS, "sql aggregate"):
            print(
                f"  {k:14s} columnar {steady[k]:6.2f} s   direct {direct[k]:6.2f} s   speed-up "
                f"{direct[k] / steady[k]:5.1f}x"
            )
    if not args.keep and args.db is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("ADVDB_HOME", tempfile.mkdtemp(prefix="advdb-home-"))
    main()
