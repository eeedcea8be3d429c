"""Trajectory ingest speed: rows/s end to end from numpy arrays, per backend.

    python benchmarks/ingest.py [--db URL ...] [--batches 16] [--images 256] [--iterations 500] [--repeat 3]

With no --db, measures a fresh SQLite file, and PostgreSQL too when ADVDB_TEST_PG_URL is
set (.ci/pg.sh starts a throwaway server). Each batch is what the attack engine commits:
trajectory rows (float32 statistics), per-image samples and the batch record, in one
transaction; images come in a seeded random order, as an attack's plan has them. Each
backend is measured --repeat times, alternating, into a store that already holds the
earlier repeats' rows; prints every figure and the median rows/s. Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from advdb.store import open_store
from advdb.store.catalogue import register_dataset
from advdb.store.columns import SAMPLE_COLUMNS, TRAJECTORY_MEASURES
from advdb.store.ingest import BatchRecord, Ingestor
from advdb.store.runs import create_run, delete_run


def make_batch(run_id: int, b: int, n_img: int, T: int, rng: np.random.Generator, image_ids: np.ndarray) -> BatchRecord:
    n = n_img * (T + 1)
    ids = image_ids[b * n_img : (b + 1) * n_img].astype(np.int32)
    traj: dict[str, np.ndarray] = {
        "image_id": np.repeat(ids, T + 1),
        "iteration": np.tile(np.arange(T + 1, dtype=np.int32), n_img),
        "search_step": np.zeros(n, np.int16),
        "pred": rng.integers(0, 1000, n).astype(np.int16),
    }
    for k in TRAJECTORY_MEASURES:
        traj[k] = rng.random(n, dtype=np.float32)
    samples = {k: rng.random(n_img, dtype=np.float32) for k in SAMPLE_COLUMNS}
    samples.update(
        image_id=ids,
        batch_index=np.full(n_img, b),
        label=np.zeros(n_img, np.int32),
        target=np.ones(n_img, np.int32),
        final_pred=np.ones(n_img, np.int32),
        first_success_iter=rng.integers(1, T, n_img).astype(np.float64),
        n_iterations=np.full(n_img, T + 1),
    )
    return BatchRecord(run_id=run_id, batch_index=b, trajectory=traj, samples=samples, attack_seconds=0.0)


def bench(url: str, batches: int, n_img: int, T: int) -> tuple[float, int]:
    """Rows/s committing one run's batches; returns it and the run's id."""
    with open_store(url) as store:
        _, image_ids = register_dataset(
            store,
            name="bench-ingest",
            kind="synthetic",
            fingerprint=f"bench-ingest-{batches * n_img}",
            labels=np.zeros(batches * n_img, np.int64),
            image_shape=[3, 224, 224],
            n_classes=1000,
            synthetic=True,
        )
        run = create_run(store, kind="attack", config={"benchmark": "ingest"}, name="bench-ingest")
        location = store.location
    # SQLAlchemy's connections are closed now: DuckDB's SQLite must not share the file with them in one process
    rng = np.random.default_rng(0)
    order = rng.permutation(image_ids)  # an attack's plan visits images in a seeded random order
    data = [make_batch(run.run_id, b, n_img, T, rng, order) for b in range(batches)]
    rows = sum(d.n_rows for d in data)
    with Ingestor(location) as ing:
        t0 = time.perf_counter()
        for d in data:
            ing.commit(d)
        dt = time.perf_counter() - t0
    return rows / dt, run.run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", action="append", help="store URL (repeatable)")
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    urls = args.db
    tmp = tempfile.TemporaryDirectory()
    if not urls:
        urls = [f"sqlite:///{tmp.name}/bench.db"]
        if os.environ.get("ADVDB_TEST_PG_URL"):
            urls.append(os.environ["ADVDB_TEST_PG_URL"])
    rows = args.batches * args.images * (args.iterations + 1)
    print(
        f"{rows:,} trajectory rows in {args.batches} batches of {args.images} images x {args.iterations + 1} "
        "iterations, "
        f"{args.repeat} repeats per backend"
    )
    rates: dict[str, list[float]] = {url: [] for url in urls}
    made: dict[str, list[int]] = {url: [] for url in urls}
    for _ in range(args.repeat):
        for url in urls:
            rate, run_id = bench(url, args.batches, args.images, args.iterations)
            rates[url].append(rate)
            made[url].append(run_id)
    for url, run_ids in made.items():
        with open_store(url) as store:
            for run_id in run_ids:
                delete_run(store, run_id)
    for url, rs in rates.items():
        backend = url.split(":", 1)[0]
        med = statistics.median(rs)
        runs = ", ".join(f"{x / 1e3:,.0f} k" for x in rs)
        print(
            f"{backend:12s} median {med:12,.0f} rows/s   ({med / 500_000:.2f} x the 500 k rows/s target; runs: {runs})"
        )


if __name__ == "__main__":
    main()
