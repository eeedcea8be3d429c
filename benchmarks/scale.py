"""Scale-out: one attack run shared by 1, 2, 4 … worker processes (``advdb attack --join``).

For each worker count: store a plan (``--plan-only``), start that many ``--join`` workers at
once, wait for all. Prints image-iterations/s and committed trajectory rows/s over the whole
wall time (process start-up included) and over the steady part (first to last batch commit),
with the ratio to one worker.

    python benchmarks/scale.py                                   # SQLite in a temp folder, CPU
    python benchmarks/scale.py --db "$ADVDB_TEST_PG_URL"         # PostgreSQL (source .ci/pg.sh start)
    python benchmarks/scale.py --workers 1,2,4,8 --device cuda   # worker k uses cuda:k

Each CPU worker gets ``--threads`` intra-op threads (default: cores / workers, at least 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def one(args: argparse.Namespace, url: str, k: int, tmp: Path) -> dict[str, float]:
    env = dict(os.environ, ADVDB_DATABASE_URL=url, ADVDB_ARTIFACTS_DIR=str(tmp / "artifacts"))
    base = [
        sys.executable,
        "-m",
        "advdb",
        "attack",
        "--loss",
        args.loss,
        "--mode",
        "equal-perturbation",
        "-n",
        str(args.n),
        "-T",
        str(args.iterations),
        "--batch-size",
        str(args.batch_size),
        "--model",
        args.model,
        "--json",
    ]
    planned = _run([*base, "--plan-only", "--device", "cpu"], env)
    if planned.returncode:
        sys.exit(planned.stderr)
    run_id = json.loads(planned.stdout)["run_id"]
    threads = args.threads or max(1, (os.cpu_count() or 1) // k)
    t0 = time.perf_counter()
    procs = []
    for w in range(k):
        device = f"cuda:{w}" if args.device == "cuda" else args.device
        wenv = dict(env, OMP_NUM_THREADS=str(threads))
        procs.append(
            subprocess.Popen(
                [*base[:3], "attack", "--join", str(run_id), "--device", device, "--json"],
                env=wenv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(err)
    wall = time.perf_counter() - t0
    span = _span_seconds(url, run_id)
    n_batches = -(-args.n // args.batch_size)
    steady_images = args.n * (n_batches - 1) / n_batches  # the first commit opens the span
    return {
        "wall_s": wall,
        "img_it_per_s": args.n * args.iterations / wall,
        "rows_per_s": args.n * (args.iterations + 1) / wall,
        "steady_img_it_per_s": steady_images * args.iterations / span if span > 0 else float("nan"),
    }


def _span_seconds(url: str, run_id: int) -> float:
    from advdb.analytics import run_sql
    from advdb.store import open_store

    with open_store(url) as store:
        loc = store.location
    row = run_sql(
        loc, f"SELECT epoch(max(committed_at)) - epoch(min(committed_at)) AS s FROM batches WHERE run_id = {run_id}"
    )
    return float(row.to_pylist()[0]["s"] or 0.0)


@contextmanager
def fresh_store(url: str | None, tmp: Path) -> Iterator[str]:
    """A new empty store: a SQLite file in ``tmp``, or a new database on the PostgreSQL server of ``url``."""
    if url is None:
        yield f"sqlite:///{tmp / 'scale.db'}"
        return
    import psycopg

    admin = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"advdb_scale_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        default=None,
        help="a PostgreSQL server URL: the benchmark makes (and drops) its own database "
        "there [default: a SQLite file in a temp folder]",
    )
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--n", type=int, default=832)
    ap.add_argument("--iterations", "-T", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--loss", default="ce-sign")
    ap.add_argument("--model", default="digits-cnn")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (worker k on cuda:k)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads per CPU worker [default: cores / workers]")
    args = ap.parse_args()
    counts = [int(k) for k in args.workers.split(",")]
    print(
        f"{args.model}, {args.n} images × T={args.iterations}, batch {args.batch_size}, {args.loss}, device "
        f"{args.device}, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'workers':>7} {'wall s':>8} {'img·it/s':>10} {'rows/s':>10} {'steady img·it/s':>16} {'× 1 worker':>11}")
    first = None
    with tempfile.TemporaryDirectory() as d, fresh_store(args.db, Path(d)) as url:
        tmp = Path(d)
        for k in counts:
            r = one(args, url, k, tmp)
            first = first or r["img_it_per_s"]
            print(
                f"{k:>7} {r['wall_s']:>8.1f} {r['img_it_per_s']:>10,.0f} {r['rows_per_s']:>10,.0f} "
                f"{r['steady_img_it_per_s']:>16,.0f} {r['img_it_per_s'] / first:>10.2f}×",
                flush=True,
            )


if __name__ == "__main__":
    main()
