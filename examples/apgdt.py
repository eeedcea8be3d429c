# ruff: noqa: E402
"""torchattacks' APGD-T (Croce & Hein, ICML 2020) recorded as an advdb run, then reported.

    python examples/apgdt.py [STORE] [--n N] [--steps S]      # default: ./advdb-apgdt.db, 16 images, 20 steps

APGD-T picks its own target: the class with the k-th largest logit of the clean image
(``n_target_classes = 1``: the second most likely). So the script asks advdb for the images it
would attack (a plan of one iteration of its own attack), sets each image's target to that
class, and hands torchattacks the recorded model (:func:`advdb.record`). Every evaluation of
the whole batch becomes a trajectory row, stored like an advdb run of attack ``external``;
``store.samples`` and SQL read it as they read advdb's own.
"""

# %% Options
import argparse
from pathlib import Path

import torch
import torchattacks

import advdb

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("store", nargs="?", default="advdb-apgdt.db")
parser.add_argument("--n", type=int, default=16, help="images")
parser.add_argument("--steps", type=int, default=20, help="APGD-T iterations")
parser.add_argument("--eps", type=float, default=0.3, help="L∞ radius (the digits' usual budget)")
args = parser.parse_args()
store = advdb.open(Path(args.store).resolve())

# %% The images advdb would attack: correctly classified digits, in a seeded order
plan = advdb.attack(store=store, loss="ce-sign", n=args.n, iterations=1, device="cpu", save_images=False)
inputs = store.inputs(plan.run_id)
model = advdb.classifier("digits-cnn")
with torch.no_grad():
    targets = model.module(inputs.images).argsort(dim=1, descending=True)[:, 1]  # APGD-T's target: the runner-up

# %% APGD-T through advdb.record: each evaluation of the batch is a row
params = {"norm": "Linf", "eps": args.eps, "steps": args.steps, "n_restarts": 1, "n_target_classes": 1, "seed": 0}
with advdb.record(
    model, inputs.images, inputs.labels, targets, store=store, library="torchattacks", attack="APGDT",
    params=params, dataset=inputs.dataset, indices=inputs.indices,
) as rec:  # fmt: skip
    atk = torchattacks.APGDT(rec.model, norm="Linf", eps=args.eps, steps=args.steps, n_restarts=1, seed=0)
    atk.n_target_classes = 1  # only the runner-up class, the target recorded above
    rec.finish(atk(inputs.images, inputs.labels))
assert rec.run is not None
run_id = rec.run.run_id
print(f"recorded run {run_id}: {rec.run.attack} ({rec.run.config['library']} {rec.run.config['external_attack']})")

# %% What it stored, read as any run is: per-image summaries and SQL over the trajectory
samples = store.samples(run_id)
reached = int(samples["first_success_iter"].notna().sum())
print(f"{reached} of {len(samples)} images reached their target; rows per image: {int(samples['n_iterations'].max())}")
print(store.sql(
    "SELECT iteration, avg(p_target) AS p_target, avg(linf) AS linf, avg((pred = target)::INT) AS at_target "
    "FROM trajectory JOIN run_images USING (run_id, image_id) WHERE run_id = ? GROUP BY iteration ORDER BY iteration",
    [run_id],
))  # fmt: skip
