"""``advdb attack``: run, resume or join a targeted attack and print its summary."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import typer

from advdb.errors import ConfigError
from advdb.vocabulary import DEFAULT_SOURCE

from . import context, render
from .errors import command
from .options import (
    AttackName,
    ImageFormat,
    Loss,
    MemoryFormat,
    Mode,
    Precision,
    Targets,
    compile_option,
    memory_format_option,
    param_option,
    parse_count,
    parse_params,
    parse_shape,
    plugins_help,
    precision_option,
)

if TYPE_CHECKING:
    from advdb.spec import AttackSpec

app = typer.Typer()


@command(app, "attack")
def attack(
    attack_name: AttackName = typer.Option(
        "unified", "--attack", help="unified (one loss source), or a full attack: ifgs, cw, lbfgs (or a plugin's)."
    ),
    loss: Loss | None = typer.Option(
        None,
        "--loss",
        help=f"Perturbation source of the unified iteration (advdb list losses) [default: {DEFAULT_SOURCE}].",
    ),
    mode: Mode | None = typer.Option(
        None, "--mode", help="Step size rule of the unified iteration [default: equal-multiplier]."
    ),
    n: str = typer.Option(
        "500",
        "--n",
        "-n",
        metavar="N|all",
        help="Number of correctly classified images to attack, or 'all' (every one).",
    ),
    iterations: int | None = typer.Option(
        None,
        "--iterations",
        "-T",
        help="Iterations T [default: 500; ifgs 100]; per search step for cw, lbfgs [default: 100, 50].",
    ),
    alpha: str | None = typer.Option(None, "--alpha", help="Multiplier α (equal multiplier, IFGS) [default: 1/255]."),
    tau: str | None = typer.Option(
        None, "--tau", help="Step size τ = ‖αP‖_p (equal perturbation) [default: one 1/255 IFGS step]."
    ),
    norm: str | None = typer.Option(None, "--norm", help="p of the equal-perturbation step: 1, 2 or inf [default: 2]."),
    epsilon: str | None = typer.Option(None, "--epsilon", help="L∞ ball radius around the image (off by default)."),
    kappa: float | None = typer.Option(None, "--kappa", help="Confidence margin κ of m-logit / CW [default: 0]."),
    param: list[str] | None = param_option("the loss source (unified) or the attack, such as kappa=2"),
    c_init: str | None = typer.Option(None, "--c-init", help="Initial constant c (cw, lbfgs)."),
    search_steps: int | None = typer.Option(None, "--search-steps", help="Search steps over c (cw, lbfgs)."),
    lr: str | None = typer.Option(None, "--lr", help="Adam learning rate (cw) [default: 0.1]."),
    abort_early: bool | None = typer.Option(
        None, "--abort-early/--no-abort-early", help="Stop a CW search step when the loss stalls [default: on]."
    ),
    early_stop: bool | None = typer.Option(
        None,
        "--early-stop/--full",
        help="Stop a batch once every image reaches its target (unified, ifgs) [default: --full].",
    ),
    check_every: int | None = typer.Option(
        None, "--check-every", help="Early-stop check interval (iterations) [default: 10]."
    ),
    model: str = typer.Option(
        "digits-cnn",
        "--model",
        help="A built-in classifier (digits-cnn, efficientnet-lite0, mnist-lenet5-robust, …: advdb list models) or a "
        "torchvision architecture (resnet50, …)." + plugins_help("model"),
    ),
    weights: str | None = typer.Option(None, "--weights", help="Weights file (state dict), or 'random'."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="digits, mnist, imagenet-sample, imagefolder, synthetic (advdb list datasets) [default: the model's]."
        + plugins_help("dataset"),
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="ROOT/<class>/<image> folder for imagefolder."),
    image_size: int = typer.Option(224, "--image-size", help="Crop size for imagefolder and imagenet-sample images."),
    image_shape: str | None = typer.Option(None, "--image-shape", help="C,H,W of synthetic images."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Images per batch (one commit each)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    precision: Precision = precision_option(),
    compile: bool = compile_option(),
    memory_format: MemoryFormat = memory_format_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of image selection and targets."),
    targets: Targets = typer.Option("random", "--targets", help="Target selection."),
    image_format: ImageFormat = typer.Option(
        "png", "--image-format", help="Adversarial image files: png (8-bit) or npy (float32)."
    ),
    save_images: bool = typer.Option(True, "--save-images/--no-save-images", help="Store adversarial image files."),
    name: str | None = typer.Option(None, "--name", help="A label for the run."),
    resume: int | None = typer.Option(
        None, "--resume", help="Finish interrupted run RUN (its stored options are used)."
    ),
    join: int | None = typer.Option(
        None, "--join", help="Work on stored run RUN beside its other workers (any machine, any time)."
    ),
    join_key: str | None = typer.Option(
        None,
        "--join-key",
        help=(
            "Share one run among every process given this key: the first creates it, the others join [default "
            "under torchrun: its launch id]."
        ),
    ),
    plan_only: bool = typer.Option(
        False, "--plan-only", help="Store the run and its plan, attack nothing; workers then --join it."
    ),
    lease: float = typer.Option(
        60.0,
        "--lease",
        help="Seconds a claimed batch stays this worker's without a heartbeat (another worker takes it after).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run a targeted attack and record every image's trajectory."""
    from advdb.api import attack_spec

    if not math.isfinite(lease) or lease <= 0:
        raise ConfigError(f"--lease must be a positive number of seconds, got {lease}")
    if sum(x is not None for x in (resume, join)) + plan_only > 1:
        raise ConfigError("--resume, --join and --plan-only exclude each other: give one")
    work: AttackSpec | int  # a new run, or the id of a stored run to resume or join
    if resume is not None:
        work = resume
    elif join is not None:
        work = join
    else:
        work = attack_spec(
            attack=attack_name.value,
            loss=loss.value if loss else None,
            mode=mode.value if mode else None,
            iterations=iterations,
            alpha=alpha,
            tau=tau,
            norm=norm,
            epsilon=epsilon,
            kappa=kappa,
            c_init=c_init,
            search_steps=search_steps,
            lr=lr,
            abort_early=abort_early,
            early_stop=early_stop,
            check_every=check_every,
            params=parse_params(param),
            model=model,
            weights=weights,
            dataset=dataset,
            data_dir=data_dir,
            image_size=image_size,
            image_shape=parse_shape(image_shape),
            n=parse_count(n),
            batch_size=batch_size,
            device=device,
            precision=precision.value,
            compile=compile,
            memory_format=memory_format.value,
            seed=seed,
            targets=targets.value,
            image_format=image_format.value,
            save_images=save_images,
            name=name,
        )
    _run(
        work,
        resume=resume is not None,
        join_key=join_key,
        plan_only=plan_only,
        lease=lease,
        device=device,
        as_json=as_json,
    )


def _run(
    work: AttackSpec | int,
    *,
    resume: bool,
    join_key: str | None,
    plan_only: bool,
    lease: float,
    device: str,
    as_json: bool,
) -> None:
    """Start, resume or join the run as this process's launcher (a plain process or a torchrun rank) says."""
    from advdb.launch import launch_from_env
    from advdb.runner import WorkerOptions, join_attack, resume_attack, run_attack

    from .progress import RichProgress

    launch = launch_from_env()
    options = WorkerOptions(lease_seconds=lease, rank=launch.rank)
    progress = RichProgress(suffix=f" (rank {launch.rank})" if launch.rank not in (None, 0) else "")
    with context.store() as store:
        try:
            if not isinstance(work, int):
                key = launch.run_key(join_key) if not plan_only else join_key
                run_id = run_attack(
                    store,
                    work,
                    progress=progress,
                    join_key=key,
                    plan_only=plan_only,
                    options=options,
                    creates_run=join_key is not None or launch.creates_run,
                    notice=_notice,
                )
            elif resume and launch.rank is None:
                local = None if device == "auto" else device
                run_id = resume_attack(store, work, progress=progress, device=local, options=options)
            else:  # --join, or --resume under torchrun: every rank joins the run and they work on it together
                run_id = join_attack(store, work, progress=progress, device=device, options=options)
        finally:
            progress.close()
        if launch.creates_run:  # under torchrun, rank 0 speaks for the run
            _print_summary(store, run_id, as_json)


def _notice(line: str) -> None:
    """What the library says before the work starts (how many images were planned), on stderr."""
    render.err_console.print(line, markup=False)


def _print_summary(store: Any, run_id: int, as_json: bool) -> None:
    from advdb.store.runs import get_run, run_counts

    run, counts = get_run(store, run_id), run_counts(store, run_id)
    info = {
        "run_id": run.run_id,
        "status": run.status,
        "attack": run.attack,
        "loss": run.loss,
        "mode": run.mode,
        "images": counts.samples,
        "succeeded": counts.succeeded,
        "trajectory_rows": counts.trajectory_rows,
        "artifacts": counts.artifacts,
        "wall_seconds": run.wall_seconds,
        "device": run.device,
    }
    if as_json:
        render.print_json(info)
        return
    if run.status == "planned":
        render.console.print(
            f"run {run.run_id} planned: {run.n_images} images in batches of {run.batch_size}; "
            f"start workers with `advdb attack --join {run.run_id}`"
        )
        return
    rate = counts.succeeded / counts.samples if counts.samples else 0.0
    render.console.print(
        f"run {run.run_id} {run.status}: {counts.samples} images, {rate:.1%} reached their target, "
        f"{counts.trajectory_rows:,} trajectory rows, {counts.artifacts} image files, {run.wall_seconds or 0:.1f} s "
        f"on {run.device}"
    )
