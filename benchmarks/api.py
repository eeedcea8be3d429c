"""How fast advdb's Python front loads a big run: ``store.trajectory(run)`` on one run of ROWS rows.

    python benchmarks/api.py --rows 10e6 [--db URL] [--keep]     # default: a temporary SQLite file
    python benchmarks/api.py --db sqlite:////tmp/big.db --no-fill  # measure a store built before (--keep)

Builds one finished attack run of synthetic trajectories (T = 500, written through the writer
process and the ingest, as runs are), then times, through ``advdb.open(…)``: the first read
(which builds the columnar copy), then whole-run reads as Arrow and as pandas, a read of three
columns, and one image's path. Each figure is the best of ``--repeat`` calls, each opening its
own DuckDB session (and checking the columnar copy), as every call of the API does. Target: a 10 M-row run
in about a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from advdb.store import open_store
from advdb.store.catalogue import register_dataset
from advdb.store.columns import SAMPLE_COLUMNS, TRAJECTORY_MEASURES
from advdb.store.ingest import BatchRecord
from advdb.store.runs import create_run, set_status
from advdb.store.writer import BackgroundWriter


def _batch(run_id: int, b: int, image_ids: np.ndarray, T: int, rng: np.random.Generator) -> BatchRecord:
    n_img, n = len(image_ids), len(image_ids) * (T + 1)
    it = np.tile(np.arange(T + 1, dtype=np.int32), n_img)
    first = rng.integers(1, T, n_img)
    traj: dict[str, np.ndarray] = {
        "image_id": np.repeat(image_ids.astype(np.int32), T + 1),
        "iteration": it,
        "search_step": np.zeros(n, np.int16),
        "pred": np.where(it >= np.repeat(first, T + 1), 1, 0).astype(np.int16),
        **{k: rng.random(n, dtype=np.float32) for k in TRAJECTORY_MEASURES},
    }
    samples: dict[str, np.ndarray] = {k: rng.random(n_img, dtype=np.float32) for k in SAMPLE_COLUMNS}
    samples.update(
        image_id=image_ids.astype(np.int32),
        batch_index=np.full(n_img, b, np.int32),
        label=np.zeros(n_img, np.int32),
        target=np.ones(n_img, np.int32),
        final_pred=np.ones(n_img, np.int32),
        first_success_iter=first.astype(np.float64),
        n_iterations=np.full(n_img, T + 1, np.int32),
    )
    return BatchRecord(run_id=run_id, batch_index=b, trajectory=traj, samples=samples, attack_seconds=1.0)


def fill(url: str, rows: int, T: int, batch_images: int) -> tuple[int, int, float]:
    """One finished attack run of about ``rows`` rows; returns (run id, rows, seconds to ingest)."""
    n_images = max(batch_images, int(rows / (T + 1)) // batch_images * batch_images)
    with open_store(url) as store:
        _, image_ids = register_dataset(
            store, name="bench-api", kind="synthetic", fingerprint=f"bench-api-{n_images}",
            labels=np.zeros(n_images, np.int64), image_shape=[3, 224, 224], n_classes=1000, synthetic=True,
        )  # fmt: skip
        run_id = create_run(
            store, kind="attack", config={"benchmark": True}, attack="unified", loss="ce", mode="equal-multiplier",
            iterations=T, n_images=n_images, batch_size=batch_images, synthetic=True,
        ).run_id  # fmt: skip
        location = store.location
    rng, total, t0 = np.random.default_rng(0), 0, time.perf_counter()
    with BackgroundWriter(location) as w:
        pos = np.arange(n_images)
        w.insert(
            "run_images",
            {"image_id": image_ids.astype(np.int32), "position": pos.astype(np.int32),
             "batch_index": (pos // batch_images).astype(np.int32), "label": np.zeros(n_images, np.int32),
             "target": np.ones(n_images, np.int32)},
            run_id=run_id,
        )  # fmt: skip
        for b in range(n_images // batch_images):
            rec = _batch(run_id, b, image_ids[b * batch_images : (b + 1) * batch_images], T, rng)
            total += rec.n_rows
            w.submit(rec)
    seconds = time.perf_counter() - t0
    with open_store(url) as store:
        set_status(store, run_id, "finished")
    return run_id, total, seconds


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def measure(url: str, run_id: int | None, repeat: int) -> None:
    import advdb

    store = advdb.open(url)
    if run_id is None:
        run_id = int(store.runs(kind="attack").run_id.max())
    t0 = time.perf_counter()
    n = store.trajectory(run_id, columns=["iteration"], as_="arrow").num_rows
    first = time.perf_counter() - t0
    print(f"run {run_id}: {n:,} trajectory rows; first read (builds the columnar copy if missing) {first:.2f} s")
    image = int(store.samples(run_id, columns=["image_id"]).image_id.iloc[0])
    cases: dict[str, Callable[[], Any]] = {
        "store.trajectory(run, as_='arrow')": lambda: store.trajectory(run_id, as_="arrow"),
        "store.trajectory(run, as_='arrow', ordered=False)": lambda: store.trajectory(
            run_id, as_="arrow", ordered=False
        ),
        "store.trajectory(run)  [pandas]": lambda: store.trajectory(run_id),
        "store.trajectory(run, columns=[3])": lambda: store.trajectory(
            run_id, columns=["image_id", "iteration", "p_target"], as_="arrow"
        ),
        "store.trajectory(run, images=[one])": lambda: store.trajectory(run_id, images=[image]),
        "store.samples(run)": lambda: store.samples(run_id),
    }
    for label, fn in cases.items():
        seconds, out = best_of(repeat, fn)
        rows = out.num_rows if hasattr(out, "num_rows") else len(out)
        print(f"  {label:50s} {seconds:6.2f} s  {rows:>12,} rows  {rows / seconds / 1e6:6.1f} M rows/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=10e6, help="trajectory rows of the run [default: 10e6]")
    ap.add_argument("--db", default=None, help="store URL or path [default: a temporary SQLite file]")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--batch-images", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the temporary store (reuse it with --no-fill --db)")
    ap.add_argument("--no-fill", action="store_true", help="measure the newest attack run of an existing store")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="advdb-bench-api-")
    url = args.db or f"sqlite:///{tmp}/bench.db"
    run_id = None
    if not args.no_fill:
        run_id, total, seconds = fill(url, int(args.rows), args.iterations, args.batch_images)
        print(f"{url}: {total:,} rows ingested in {seconds:.1f} s ({total / seconds:,.0f} rows/s)")
    measure(url, run_id, args.repeat)
    if args.db is None and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("ADVDB_HOME", tempfile.mkdtemp(prefix="advdb-home-"))
    main()
