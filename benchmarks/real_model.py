"""Speed on a real model: targeted BIM (IFGS) on EfficientNet-Lite0 and the real ImageNet images it
classifies correctly (foolbox's sample), three ways, each a fresh process as a user runs it.

    python benchmarks/real_model.py [--iterations 20] [--repeat 3] [--device auto]

* **bare**: the loop a researcher writes inline (forward, input gradient, sign step, projection
  onto the ε-ball, clip) on the classifier prepared as advdb prepares it (channels-last on a CPU),
  in a script of its own: loading the model and images, one untimed iteration, then the loop;
* **torchattacks**: its targeted ``BIM`` with the same ε, α and steps, in the same kind of script,
  if torchattacks is installed (``pip install --no-deps torchattacks``: its pin of ``requests``
  clashes with Selenium's, so it is not in the test extra);
* **advdb**: the whole ``advdb attack --attack ifgs`` command, every trajectory row and PNG
  recorded into a new SQLite store — and, beside it, the run's own stored wall time (planning,
  the writer and the last commit included, start-up not) and its attack loop (the batches'
  timed seconds: iterations and per-iteration statistics).

Each prints its loop's seconds and the whole process's (start-up included). The three alternate
``--repeat`` times in a rotating order; the fastest of each counts (the run least disturbed by
other work on a shared machine). Prints image-iterations per second and the ratios to the bare
script (target: advdb within 5 % of it on a real model).
"""

from __future__ import annotations

import argparse
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


def torchattacks_bim(model: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, steps: int) -> float:
    import torchattacks

    attack = torchattacks.BIM(model, eps=EPSILON, alpha=ALPHA, steps=steps)
    attack.set_mode_targeted_by_label(quiet=True)
    sync(x0.device)
    start = time.perf_counter()
    attack(x0, t).cpu()
    return time.perf_counter() - start


def child(way: str, n: int, steps: int, device_name: str) -> None:
    """One way in this (fresh) process: load, one untimed iteration, then the timed loop; prints its seconds."""
    device = resolve_device(device_name)
    model, x0, t = setup(device, n)
    run = bare if way == "bare" else torchattacks_bim
    run(model, x0, t, 1)
    print(f"loop {run(model, x0, t, steps)}")


def script(way: str, n: int, steps: int, device: str) -> tuple[float, float] | None:
    """(whole process seconds, loop seconds) of ``way`` run as a script of its own; None: not installed."""
    if way == "torchattacks":
        try:
            import torchattacks  # noqa: F401
        except ImportError:
            return None
    cmd = [sys.executable, __file__, "--child", way, "--n", str(n), "--iterations", str(steps), "--device", device]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    whole = time.perf_counter() - start
    loop = next(float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("loop "))
    return whole, loop


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
    ap.add_argument("--child", choices=("bare", "torchattacks"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.n, args.iterations, args.device)
    ways: dict[str, list[tuple[float, float]]] = {"bare": [], "torchattacks": [], "advdb": []}
    runs: list[float] = []
    order = ["bare", "torchattacks", "advdb"]
    for _ in range(args.repeat):  # interleaved and rotated: the machine's drifts, and any cost of going first,
        for way in order:  # fall on every way alike
            if way == "advdb":
                whole, run, loop = advdb_command(args.n, args.iterations, args.device)
                ways["advdb"].append((whole, loop))
                runs.append(run)
            elif (got := script(way, args.n, args.iterations, args.device)) is not None:
                ways[way].append(got)
        order = order[1:] + order[:1]
    report(ways, runs, args)


def report(ways: dict[str, list[tuple[float, float]]], runs: list[float], args: argparse.Namespace) -> None:
    work = args.n * args.iterations
    print(f"EfficientNet-Lite0, {args.n} real ImageNet images x {args.iterations} iterations on {args.device}")
    print(f"  (each a fresh process; the fastest of {args.repeat} interleaved repeats, the least disturbed by others)")
    b_whole, b_loop = min(w for w, _ in ways["bare"]), min(lp for _, lp in ways["bare"])
    print(f"  {'':22s} {'loop':>9s} {'img-it/s':>9s} {'ratio':>6s}   {'process':>8s} {'ratio':>6s}")
    for label, key in (("bare script", "bare"), ("torchattacks BIM", "torchattacks"), ("advdb attack", "advdb")):
        if not ways[key]:
            print(f"  {label:22s} not installed (pip install --no-deps torchattacks)")
            continue
        whole, loop = min(w for w, _ in ways[key]), min(lp for _, lp in ways[key])
        print(
            f"  {label:22s} {loop:8.2f}s {work / loop:9.1f} {loop / b_loop:6.3f}   {whole:7.2f}s {whole / b_whole:6.3f}"
        )
    r = min(runs)
    print(f"  advdb run as stored (planning, warm-up, writer, last commit; no start-up): {r:.2f} s, {r / b_loop:.3f}")


if __name__ == "__main__":
    main()
