"""Speed on a real model: targeted BIM (IFGS) on EfficientNet-Lite0 and the real ImageNet images it
classifies correctly (foolbox's sample), three ways.

    python benchmarks/real_model.py [--iterations 20] [--repeat 3] [--device auto]

* **bare**: the loop a researcher writes inline (forward, input gradient, sign step, projection
  onto the ε-ball, clip) on the classifier prepared as advdb prepares it (channels-last on a CPU);
* **torchattacks**: its targeted ``BIM`` with the same ε, α and steps, if torchattacks is
  installed (``pip install --no-deps torchattacks``: its pin of ``requests`` clashes with
  Selenium's, so it is not in the test extra);
* **advdb**: the whole ``advdb attack --attack ifgs`` command in a fresh process, every
  trajectory row and PNG recorded into a new SQLite store — and, beside it, the run's own
  stored wall time (planning, the writer and the last commit included, start-up not) and its
  attack loop (the batches' timed seconds: iterations and per-iteration statistics).

Bare and advdb alternate ``--repeat`` times; medians count. Prints image-iterations per second
and the ratios to the bare loop (target: advdb's run within 5 % of it on a real model).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from advdb.devices import resolve_device
from advdb.execution import ExecutionOptions, prepare
from advdb.planning import plan_targets
from advdb.spec import AttackSpec, load_data_and_model

EPSILON, ALPHA = 16 / 255, 1 / 255


def setup(device: torch.device, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The prepared Lite0 and the correctly classified sample images with their seeded targets."""
    spec = AttackSpec(model="efficientnet-lite0", attack="ifgs", n=n, batch_size=n)
    ds, clf = load_data_and_model(spec, device)
    plan, _ = plan_targets(clf, ds, n=n, seed=0, targets="random", device=device, batch_size=n)
    model = prepare(clf.module, device, ExecutionOptions())
    x0 = ds.load(plan.indices).to(device)
    return model, x0, torch.as_tensor(plan.targets, device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(model: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, steps: int) -> float:
    sync(x0.device)
    start = time.perf_counter()
    x = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), t), x)
        x = torch.min(torch.max(x.detach() - ALPHA * g.sign(), x0 - EPSILON), x0 + EPSILON).clamp_(0, 1)
    x.cpu()
    return time.perf_counter() - start


def torchattacks_bim(model: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, steps: int) -> float | None:
    try:
        import torchattacks
    except ImportError:
        return None
    attack = torchattacks.BIM(model, eps=EPSILON, alpha=ALPHA, steps=steps)
    attack.set_mode_targeted_by_label(quiet=True)
    sync(x0.device)
    start = time.perf_counter()
    attack(x0, t).cpu()
    return time.perf_counter() - start


def advdb_command(n: int, steps: int, device: str) -> tuple[float, float, float]:
    """(the whole command's seconds, the run's stored wall seconds, its timed attack loop's seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "advdb", "--db", f"sqlite:///{tmp}/bench.db", "attack", "--attack", "ifgs"]
        cmd += ["--model", "efficientnet-lite0", "-n", str(n), "-T", str(steps), "-b", str(n), "--device", device]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
        whole = time.perf_counter() - start
        query = [sys.executable, "-m", "advdb", "--db", f"sqlite:///{tmp}/bench.db", "sql", "--format", "csv"]
        sql = "SELECT max(r.wall_seconds) || ',' || sum(b.attack_seconds) FROM runs r JOIN batches b USING (run_id)"
        out = subprocess.run([*query, sql], check=True, capture_output=True, text=True)
        run, loop = out.stdout.split()[-1].strip('"').split(",")
        return whole, float(run), float(loop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n", type=int, default=17, help="images (17: all that Lite0 classifies correctly)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    model, x0, t = setup(device, args.n)
    bare(model, x0, t, 2)  # warm-up
    work = args.n * args.iterations
    bares, commands, runs, loops = [], [], [], []
    for _ in range(args.repeat):
        bares.append(bare(model, x0, t, args.iterations))
        whole, run, loop = advdb_command(args.n, args.iterations, args.device)
        commands.append(whole)
        runs.append(run)
        loops.append(loop)
    tk = torchattacks_bim(model, x0, t, args.iterations)
    b, c, r, lp = (statistics.median(v) for v in (bares, commands, runs, loops))
    print(f"EfficientNet-Lite0, {args.n} real ImageNet images x {args.iterations} iterations on {device}")
    print(
        f"  bare loop            {b:7.2f} s  {work / b:7.1f} img-it/s  (runs: {', '.join(f'{x:.2f}' for x in bares)})"
    )
    if tk is not None:
        print(f"  torchattacks BIM     {tk:7.2f} s  {work / tk:7.1f} img-it/s  ratio to bare {tk / b:5.3f}")
    else:
        print("  torchattacks BIM     not installed (pip install --no-deps torchattacks)")
    print(f"  advdb attack loop    {lp:7.2f} s  {work / lp:7.1f} img-it/s  ratio to bare {lp / b:5.3f} (batches)")
    print(f"  advdb run (stored)   {r:7.2f} s  {work / r:7.1f} img-it/s  ratio to bare {r / b:5.3f}")
    print(f"  advdb whole command  {c:7.2f} s  {work / c:7.1f} img-it/s  ratio to bare {c / b:5.3f}")


if __name__ == "__main__":
    main()
