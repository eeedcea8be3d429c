"""Time per image of each attack on the digits default, and the share spent in the model.

    python benchmarks/full_attacks.py [--n 128] [--batch-size 64]

Runs ifgs, cw, lbfgs and the four loss sources (equal perturbation, T = 300) through advdb
into a temporary SQLite store. "model share" = (model evaluations × the measured time of
one forward + backward of a batch) / the attack's own seconds: what is left is the attack's
bookkeeping (statistics, the c search, SciPy's host round trips).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from advdb.analytics import run_sql
from advdb.data import create_dataset
from advdb.models import create_classifier
from advdb.runner import run_attack
from advdb.spec import AttackSpec
from advdb.store import open_store

ATTACKS = [
    ("ifgs", {"iterations": 300}),
    ("cw", {}),
    ("lbfgs", {}),
    *[
        ("unified", {"loss": loss, "mode": "equal-perturbation", "iterations": 300})
        for loss in ("ce", "ce-sign", "logit", "m-logit")
    ],
]


def fwd_bwd_seconds(batch: int, reps: int = 50) -> float:
    clf = create_classifier("digits-cnn")
    x = create_dataset("digits").load(range(batch))
    t = torch.zeros(batch, dtype=torch.long)
    for _ in range(5):
        xx = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(clf.module(xx), t), xx)
    t0 = time.perf_counter()
    for _ in range(reps):
        xx = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(clf.module(xx), t), xx)
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    per_eval = fwd_bwd_seconds(args.batch_size)
    print(f"one forward+backward of {args.batch_size} digits: {per_eval * 1e3:.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        with open_store(url) as store:
            for name, params in ATTACKS:
                run_attack(store, AttackSpec(attack=name, params=dict(params), n=args.n, batch_size=args.batch_size))
            loc = store.location
        rows = run_sql(
            loc,
            """
            SELECT r.run_id, r.attack, r.loss, r.wall_seconds,
                   (SELECT sum(attack_seconds) FROM batches b WHERE b.run_id = r.run_id) AS attack_s,
                   (SELECT sum(n)::DOUBLE FROM (SELECT count(DISTINCT iteration) AS n FROM trajectory t
                        JOIN run_images USING (run_id, image_id)
                        WHERE t.run_id = r.run_id GROUP BY batch_index)) AS evals,
                   (SELECT avg((final_pred = target)::INT) FROM samples s WHERE s.run_id = r.run_id) AS success
            FROM runs r ORDER BY r.run_id""",
        ).to_pylist()
    print(f"{'attack':10s} {'loss':8s} {'s/image':>9s} {'evals/batch':>12s} {'model share':>12s} {'success':>8s}")
    for r in rows:
        batches = -(-args.n // args.batch_size)
        share = r["evals"] * per_eval / r["attack_s"]
        print(
            f"{r['attack']:10s} {r['loss']:8s} {r['attack_s'] / args.n:9.4f} {r['evals'] / batches:12.0f} "
            f"{share:12.0%} {r['success']:8.0%}"
        )


if __name__ == "__main__":
    main()
