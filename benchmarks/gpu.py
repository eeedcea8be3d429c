"""Execution options measured: a bare eager loop against advdb, for each precision × compile.

    python benchmarks/gpu.py                      # CUDA: ResNet-50 (random weights), synthetic 3×224×224 images
    python benchmarks/gpu.py --device cpu         # no GPU: the digits CNN on the digits default
    python benchmarks/gpu.py --iterations 100 500 --n 1024 --batch-size 256

For each option combination (fp32, tf32 on CUDA, bf16; eager and compiled; the memory
layout ``auto`` picks) and each T: the bare loop (the attack written inline — forward, input
gradient, sign step, clip — with the same execution options, recording nothing, timed from
its first batch after a warm-up) and the whole ``advdb attack`` command (a new process: start-up,
model load, planning, writer, every row recorded, PNG files on, the last commit), in
image-iterations/s, the ratios command/bare and run/bare (the run's wall time as stored, which
leaves out the process start-up and model load), the speed-up
over eager fp32, peak GPU memory, and the time of the paper-scale study's 2 × 10⁸
image-iterations (4 sources × 2 modes × 50,000 images × 500 iterations) at that whole-run
speed — the study's own time on CUDA with ResNet-50; on a CPU only a scale for the digits CNN.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import torch

from advdb.devices import resolve_device
from advdb.execution import ExecutionOptions, prepare
from advdb.planning import plan_targets
from advdb.spec import AttackSpec, load_data_and_model
from advdb.store import open_store
from advdb.store.runs import get_run

PAPER_IMAGE_ITERATIONS = 4 * 2 * 50_000 * 500


def base_spec(device: torch.device, n: int, batch_size: int) -> AttackSpec:
    if device.type == "cuda":
        return AttackSpec(
            model="resnet50",
            weights="random",
            dataset="synthetic",
            image_shape=(3, 224, 224),
            n=n,
            batch_size=batch_size,
            device=str(device),
        )
    return AttackSpec(model="digits-cnn", n=n, batch_size=batch_size, device="cpu")


def combinations(device: torch.device) -> list[ExecutionOptions]:
    precisions = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    return [ExecutionOptions(precision=p, compile=c) for c in (False, True) for p in precisions]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(spec: AttackSpec, device: torch.device, options: ExecutionOptions, T: int) -> float:
    """Seconds of the inline attack on the run's images and targets (after one warm-up batch)."""
    ds, clf = load_data_and_model(spec, device)
    plan, _ = plan_targets(
        clf, ds, n=spec.n, seed=spec.seed, targets=spec.targets, device=device, batch_size=spec.batch_size
    )
    model = prepare(clf.module, device, options)
    alpha = 1 / 255

    def attack(s: int, steps: int) -> None:
        x0 = ds.load(plan.indices[s : s + spec.batch_size]).to(device)
        t = torch.as_tensor(plan.targets[s : s + spec.batch_size], device=device)
        x = x0.clone()
        for _ in range(steps):
            x.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), t)
            (g,) = torch.autograd.grad(loss, x)
            x = (x.detach() - alpha * g.sign()).clamp_(0, 1)
        x.cpu()

    attack(0, 2)  # compile (when asked) and warm up outside the timing, as advdb's first batch pays it
    sync(device)
    t0 = time.perf_counter()
    for s in range(0, spec.n, spec.batch_size):
        attack(s, T)
    sync(device)
    return time.perf_counter() - t0


def command_args(spec: AttackSpec) -> list[str]:
    """``advdb attack`` options for ``spec``."""
    args = ["--model", spec.model, "-n", str(spec.n), "--batch-size", str(spec.batch_size), "--device", spec.device]
    args += ["--loss", spec.params["loss"], "-T", str(spec.params["iterations"]), "--precision", spec.precision]
    args += ["--compile" if spec.compile else "--no-compile", "--memory-format", spec.memory_format]
    if spec.weights:
        args += ["--weights", spec.weights]
    if spec.dataset:
        args += ["--dataset", spec.dataset]
    if spec.image_shape:
        args += ["--image-shape", ",".join(map(str, spec.image_shape))]
    return args


def whole_command(spec: AttackSpec) -> tuple[float, float]:
    """Seconds of the whole ``advdb attack`` process, and the run's wall time as stored."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "advdb", "--db", url, "attack", *command_args(spec)], check=True)
        seconds = time.perf_counter() - t0
        with open_store(url) as store:
            return seconds, float(get_run(store, 1).wall_seconds or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--n", type=int, default=None, help="images [default: 1024 on CUDA, 512 on a CPU]")
    ap.add_argument("--batch-size", type=int, default=None, help="[default: 256 on CUDA, 128 on a CPU]")
    args = ap.parse_args()
    device = resolve_device(args.device)
    n = args.n or (1024 if device.type == "cuda" else 512)
    spec = base_spec(device, n, args.batch_size or (256 if device.type == "cuda" else 128))
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"model {spec.model}, {n} images, batch {spec.batch_size}, ce-sign equal multiplier"
    )
    reference: dict[int, float] = {}
    for options in combinations(device):
        for T in args.iterations:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            b = bare(spec, device, options, T)
            run = replace(
                spec, params={"loss": "ce-sign", "iterations": T}, precision=options.precision, compile=options.compile
            )
            w, stored = whole_command(run)
            rate = n * T / w
            reference.setdefault(T, rate)
            memory = (
                f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
            )
            layout = "channels-last" if options.channels_last(device) else "contiguous"
            print(
                f"{options.precision:4s} {'compiled' if options.compile else 'eager   '} {layout:13s} T={T:4d}: "
                f"bare {n * T / b:9,.0f} img·it/s, advdb command {rate:9,.0f} img·it/s, command/bare "
                f"{w / b:5.3f}, run/bare {stored / b:5.3f}, × eager fp32 {rate / reference[T]:4.2f}{memory}; "
                f"2×10⁸ image-iterations (the paper-scale study) at this speed: "
                f"{PAPER_IMAGE_ITERATIONS / rate / 3600:5.1f} h"
            )


if __name__ == "__main__":
    main()
