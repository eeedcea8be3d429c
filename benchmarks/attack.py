"""Recording overhead: the same attack bare (a plain PyTorch loop, nothing recorded) and
through advdb with full recording (statistics, trajectory rows, samples, image files) to SQLite.

    python benchmarks/attack.py [--case digits|resnet18|all] [--device auto]

Prints seconds for each and the ratio tracked / bare (target ≤ 1.10). The tracked time is
the run's whole wall time as stored (planning, writer start-up and the last commit
included); the bare loop gets the same images, targets and iterations. These machines are
shared and noisy: bare and tracked runs alternate ``--repeat`` times and the medians count.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from advdb.devices import resolve_device
from advdb.execution import prepare
from advdb.planning import plan_targets
from advdb.runner import run_attack
from advdb.spec import AttackSpec, load_data_and_model
from advdb.store import open_store
from advdb.store.runs import get_run, run_counts

CASES = {
    # name: (spec options, attack params)
    "digits": (
        dict(model="digits-cnn", n=512, batch_size=128),
        dict(loss="ce-sign", mode="equal-multiplier", iterations=300),
    ),
    "resnet18": (
        dict(model="resnet18", weights="random", dataset="synthetic", image_shape=(3, 224, 224), n=16, batch_size=8),
        dict(loss="ce-sign", mode="equal-multiplier", iterations=30),
    ),
}


def bare(spec: AttackSpec, device: torch.device) -> float:
    """The attack as a researcher would write it inline: forward, backward, sign step, clip — with
    the classifier prepared as the run prepares it (precision, compile, memory layout)."""
    ds, clf = load_data_and_model(spec, device)
    plan, _ = plan_targets(
        clf, ds, n=spec.n, seed=spec.seed, targets=spec.targets, device=device, batch_size=spec.batch_size
    )
    model = prepare(clf.module, device, spec.execution)
    T, alpha = spec.params["iterations"], spec.params.get("alpha", 1 / 255)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(0, spec.n, spec.batch_size):
        x0 = ds.load(plan.indices[s : s + spec.batch_size]).to(device)
        t = torch.as_tensor(plan.targets[s : s + spec.batch_size], device=device)
        x = x0.clone()
        for _ in range(T):
            x.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), t)
            (g,) = torch.autograd.grad(loss, x)
            x = (x.detach() - alpha * g.sign()).clamp_(0, 1)
        x.cpu()
    return time.perf_counter() - t0


def tracked(spec: AttackSpec) -> tuple[float, float, int]:
    """(run wall seconds, seconds inside the attack loop, trajectory rows)."""
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(f"sqlite:///{tmp}/bench.db") as store:
            run_id = run_attack(store, spec)
            counts = run_counts(store, run_id)
            return float(get_run(store, run_id).wall_seconds or 0), counts.attack_seconds, counts.trajectory_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    for name in CASES if args.case == "all" else [args.case]:
        opts, params = CASES[name]
        spec = AttackSpec(params=dict(params), device=args.device, **opts)
        bare(spec, device)  # warm-up (model load, caches)
        bs, ts, loops = [], [], []
        for _ in range(args.repeat):
            bs.append(bare(spec, device))
            t, loop, rows = tracked(spec)
            ts.append(t)
            loops.append(loop)
        b, t, loop = statistics.median(bs), statistics.median(ts), statistics.median(loops)
        print(
            f"{name:9s} bare {b:7.2f} s   tracked {t:7.2f} s (attack loop {loop:7.2f} s)   "
            f"ratio {t / b:5.3f} (loop {loop / b:5.3f})   "
            f"[{spec.n} images x {params['iterations']} iterations, {rows:,} rows; runs: bare "
            f"{', '.join(f'{x:.2f}' for x in bs)}; "
            f"tracked {', '.join(f'{x:.2f}' for x in ts)}]"
        )


if __name__ == "__main__":
    main()
