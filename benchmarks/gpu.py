"""Execution options measured: a bare eager loop against advdb, for each precision × compile.

    python benchmarks/gpu.py                      # CUDA: ResNet-50 (random weights), synthetic 3×224×224 images
    python benchmarks/gpu.py --device cpu         # no GPU: the digits CNN on the digits default
    python benchmarks/gpu.py --iterations 100 500 --n 1024 --batch-size 256

For each option combination (fp32, tf32 on CUDA, bf16; eager and compiled; the memory
layout ``auto`` picks) and each T: the bare loop (the attack written inline — forward, input
gradient, sign step, clip — with the same execution options, recording nothing, timed from
its first batch after a warm-up) and the whole ``advdb attack`` command (start-up, model
load, planning, writer, every row recorded, PNG files on, the last commit), in
image-iterations/s, the ratios command/bare and run/bare (the run's wall time as stored, which
leaves out the process start-up and model load), the speed-up over eager fp32, each one's own
peak GPU memory, and the time of the paper-scale study's 2 × 10⁸ image-iterations (4 sources ×
2 modes × 50,000 images × 500 iterations) at that whole-run speed — the study's own time on
CUDA with ResNet-50; on a CPU only a scale for the digits CNN.

Each measurement runs in a process of its own (this script again, ``--child``), so none
inherits another's GPU memory, and with empty compile caches of its own
(``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR``), so every compiled command pays a cold
compile, as a user's first run does. The command's process runs the ``advdb`` command line
in-process and reports ``torch.cuda.max_memory_allocated`` when it ends; this process never
touches the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from advdb.execution import ExecutionOptions
    from advdb.spec import AttackSpec

PAPER_IMAGE_ITERATIONS = 4 * 2 * 50_000 * 500
CACHE_VARIABLES = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


class Measurement(NamedTuple):
    """What one child process measured."""

    seconds: float  # bare: the timed loop; command: the whole process, start-up included
    peak_bytes: int | None  # torch.cuda.max_memory_allocated of that process (None without CUDA)
    cold_cache: bool  # its compile caches were empty when it started
    device_name: str
    caches: list[str]  # where its compile caches were
    stored_seconds: float | None = None  # command: the run's wall time as stored


def base_spec(device: str, n: int, batch_size: int) -> AttackSpec:
    from advdb.spec import AttackSpec

    if device.startswith("cuda"):
        return AttackSpec(
            model="resnet50",
            weights="random",
            dataset="synthetic",
            image_shape=(3, 224, 224),
            n=n,
            batch_size=batch_size,
            device=device,
        )
    return AttackSpec(model="digits-cnn", n=n, batch_size=batch_size, device="cpu")


def combinations(device: str) -> list[ExecutionOptions]:
    from advdb.execution import ExecutionOptions

    precisions = ["fp32", "tf32", "bf16"] if device.startswith("cuda") else ["fp32", "bf16"]
    return [ExecutionOptions(precision=p, compile=c) for c in (False, True) for p in precisions]


# --- in the child processes ---------------------------------------------------------------


def bare(spec: AttackSpec, options: ExecutionOptions, T: int) -> float:
    """Seconds of the inline attack on the run's images and targets (after one warm-up batch)."""
    import torch

    from advdb.devices import resolve_device
    from advdb.execution import prepare
    from advdb.planning import plan_targets
    from advdb.spec import load_data_and_model

    device = resolve_device(spec.device)
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
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for s in range(0, len(plan.indices), spec.batch_size):
        attack(s, T)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def caches_empty() -> bool:
    """Whether this process's compile caches hold nothing yet."""
    dirs = [Path(os.environ[v]) for v in CACHE_VARIABLES if v in os.environ]
    return len(dirs) == len(CACHE_VARIABLES) and not any(d.exists() and any(d.iterdir()) for d in dirs)


def gpu_report() -> dict[str, Any]:
    """This process's peak allocated GPU memory and its GPU's name (nothing where CUDA never started)."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {"peak_bytes": None, "device_name": "CPU"}
    return {"peak_bytes": torch.cuda.max_memory_allocated(), "device_name": torch.cuda.get_device_name()}


def child(kind: str, report: str, rest: list[str]) -> None:
    """``bare CONFIG`` (a JSON object: spec, options, T) or ``command ARGS…`` (``advdb``'s own
    arguments, run in-process); writes what it measured to ``report`` as JSON."""
    caches = [os.environ.get(v, "") for v in CACHE_VARIABLES]
    out: dict[str, Any] = {"cold_cache": caches_empty(), "caches": caches, "seconds": 0.0}
    try:
        if kind == "bare":
            from advdb.execution import ExecutionOptions
            from advdb.spec import AttackSpec

            given = json.loads(rest[0])
            options = ExecutionOptions(**given["options"])
            out["seconds"] = bare(AttackSpec.from_config(given["spec"]), options, int(given["T"]))
        else:
            from advdb.cli import main as advdb_main

            sys.argv = ["advdb", *rest]
            try:
                advdb_main()
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise
    finally:
        Path(report).write_text(json.dumps({**out, **gpu_report()}))


# --- in this process ----------------------------------------------------------------------


def in_child(kind: str, args: list[str]) -> Measurement:
    """Run one measurement in a new process with empty compile caches of its own; what it reports."""
    with tempfile.TemporaryDirectory(prefix="advdb-bench-") as tmp:
        env = {**os.environ, **{v: str(Path(tmp) / v.lower()) for v in CACHE_VARIABLES}}
        report = Path(tmp) / "report.json"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(report), *args], env=env, check=True
        )
        seconds = time.perf_counter() - t0
        got = json.loads(report.read_text())
    return Measurement(
        seconds=seconds if kind == "command" else float(got["seconds"]),
        peak_bytes=got["peak_bytes"],
        cold_cache=bool(got["cold_cache"]),
        device_name=str(got["device_name"]),
        caches=list(got["caches"]),
    )


def measure_bare(spec: AttackSpec, options: ExecutionOptions, T: int) -> Measurement:
    return in_child("bare", [json.dumps({"spec": spec.to_config(), "options": options.to_dict(), "T": T})])


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


def measure_command(spec: AttackSpec) -> Measurement:
    """The whole ``advdb attack`` process (its seconds and peak GPU memory), and the run's wall time as stored."""
    from advdb.store import open_store
    from advdb.store.runs import get_run

    with tempfile.TemporaryDirectory(prefix="advdb-bench-store-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        measured = in_child("command", ["--db", url, "attack", *command_args(spec)])
        with open_store(url) as store:
            return measured._replace(stored_seconds=float(get_run(store, 1).wall_seconds or 0.0))


def gib(m: Measurement) -> str:
    return "–" if m.peak_bytes is None else f"{m.peak_bytes / 2**30:.1f} GiB"


def report_line(
    options: ExecutionOptions, device: str, T: int, n: int, b: Measurement, c: Measurement, ref: float
) -> str:
    import torch

    rate = n * T / c.seconds
    layout = "channels-last" if options.channels_last(torch.device(device)) else "contiguous"
    warm = "" if b.cold_cache and c.cold_cache else " (a compile cache was not empty!)"
    return (
        f"{options.precision:4s} {'compiled' if options.compile else 'eager   '} {layout:13s} T={T:4d}: "
        f"bare {n * T / b.seconds:9,.0f} img·it/s, advdb command {rate:9,.0f} img·it/s, command/bare "
        f"{c.seconds / b.seconds:5.3f}, run/bare {(c.stored_seconds or 0.0) / b.seconds:5.3f}, × eager fp32 "
        f"{rate / ref:4.2f}, peak GPU memory bare {gib(b)}, command {gib(c)}; 2×10⁸ image-iterations (the "
        f"paper-scale study) at this speed: {PAPER_IMAGE_ITERATIONS / rate / 3600:5.1f} h{warm}"
    )


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    ap.add_argument("--iterations", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--n", type=int, default=None, help="images [default: 1024 on CUDA, 512 on a CPU]")
    ap.add_argument("--batch-size", type=int, default=None, help="[default: 256 on CUDA, 128 on a CPU]")
    args = ap.parse_args()
    import torch  # only to know whether there is a GPU: this process starts no CUDA context

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    on_gpu = device.startswith("cuda")
    n = args.n or (1024 if on_gpu else 512)
    spec = base_spec(device, n, args.batch_size or (256 if on_gpu else 128))
    print(
        f"device {device}, model {spec.model}, {n} images, batch {spec.batch_size}, ce-sign equal multiplier; "
        "each measurement in its own process with empty compile caches"
    )
    reference: dict[int, float] = {}
    for options in combinations(device):
        for T in args.iterations:
            b = measure_bare(spec, options, T)
            if not reference:
                print(f"on {b.device_name}")
            run = replace(
                spec, params={"loss": "ce-sign", "iterations": T}, precision=options.precision, compile=options.compile
            )
            c = measure_command(run)
            reference.setdefault(T, n * T / c.seconds)
            print(report_line(options, device, T, n, b, c, reference[T]), flush=True)


if __name__ == "__main__":
    main()
