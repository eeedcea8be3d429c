"""The advdb command line. Thin: parse options, call the library, render the result.

Errors from the library (``advdb.errors.AdvdbError``) become one line on stderr and the
error's exit code, in one place: :class:`AdvdbGroup`.
"""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from typer._click import exceptions as click_exceptions  # typer's own Click
from typer.core import TyperGroup

from advdb import __version__
from advdb.cli import render
from advdb.errors import AdvdbError, ConfigError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """The one place where errors become one line on stderr and an exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdvdbError as exc:
            render.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            render.error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug: one line unless ADVDB_DEBUG asks for the traceback
            if os.environ.get("ADVDB_DEBUG"):
                raise
            render.error(f"internal error: {type(exc).__name__}: {exc} (set ADVDB_DEBUG=1 for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def command(group: typer.Typer, name: str) -> Callable[[F], F]:
    """Register a command with the shared error handling."""

    def deco(fn: F) -> F:
        group.command(name)(handle_errors(fn))
        return fn

    return deco


class AdvdbGroup(TyperGroup):
    """The root command: Click's usage errors become advdb's one line on stderr, exit code 2."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(0)
        except click_exceptions.ClickException as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
            message = exc.format_message().strip().replace("\n", " ").replace("Value error, ", "")
            render.error(message[:1].lower() + message[1:] + where)
            sys.exit(exc.exit_code)
        except click_exceptions.Abort:
            render.error("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _sub(name: str, help: str) -> typer.Typer:
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False)


app = typer.Typer(
    name="advdb", cls=AdvdbGroup, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Run targeted gradient-based adversarial attacks, record every image's trajectory in SQL, query it with DuckDB.",
)
db_app = _sub("db", "Create and upgrade the store's schema.")
runs_app = _sub("runs", "List, show and delete runs.")
app.add_typer(db_app)
app.add_typer(runs_app)


class State:
    db: Optional[str] = None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"advdb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    db: Optional[str] = typer.Option(None, "--db", envvar="ADVDB_DATABASE_URL", show_envvar=True,
                                     help="Store URL: sqlite:///FILE (default ./advdb.db) or postgresql://USER@HOST/DB."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    State.db = db


def _store(create: bool = True):  # noqa: ANN202
    from advdb.store import open_store

    return open_store(State.db, create=create)


# --- db ----------------------------------------------------------------------------------


@command(db_app, "upgrade")
def db_upgrade() -> None:
    """Create the schema or upgrade it to this advdb's head revision."""
    from advdb.store import open_store
    from advdb.store.migrate import upgrade

    with open_store(State.db, check_schema=False) as store:
        before, after = upgrade(store)
        where = store.location.masked
    if before == after:
        render.console.print(f"{where}: already at head ({after})")
    else:
        render.console.print(f"{where}: upgraded {before or 'empty'} → {after}")


@command(db_app, "current")
def db_current(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the store's schema revision and this advdb's head."""
    from advdb.store import open_store
    from advdb.store.migrate import current_revision, head_revision, revision_state

    with open_store(State.db, check_schema=False) as store:
        cur, head = current_revision(store), head_revision()
        where = store.location.masked
    state = {"up to date": "up to date", "empty": "empty: run `advdb db upgrade`", "behind": "behind: run `advdb db upgrade`",
             "ahead": "newer than this advdb knows: upgrade advdb"}[revision_state(cur)]
    if as_json:
        render.print_json({"store": where, "current": cur, "head": head, "up_to_date": cur == head})
    else:
        render.console.print(f"{where}: revision {cur or '∅'} (head {head}, {state})")


@command(db_app, "artifact-root")
def db_artifact_root(
    path: Optional[Path] = typer.Argument(None, help="Record this folder as the new root (move the run-* folders there first)."),
) -> None:
    """Show or set the store's artifact root: the one folder where every worker writes image files."""
    from advdb.store.artifact_root import artifact_root, recorded_root, set_artifact_root

    with _store() as store:
        if path is not None:
            render.console.print(f"artifact root of {store.location.masked}: {set_artifact_root(store, path)}")
            return
        recorded, used = recorded_root(store), artifact_root(store)
        where = store.location.masked
    note = "" if recorded is None or recorded == used else f" (recorded {recorded}; ADVDB_ARTIFACTS_DIR overrides it here)"
    state = " (not recorded yet: the first attack that saves images records it)" if recorded is None else ""
    render.console.print(f"artifact root of {where}: {used}{note}{state}")


# --- attack ------------------------------------------------------------------------------


class AttackName(str, Enum):
    unified = "unified"
    ifgs = "ifgs"
    cw = "cw"
    lbfgs = "lbfgs"


class Loss(str, Enum):
    ce = "ce"
    ce_sign = "ce-sign"
    logit = "logit"
    m_logit = "m-logit"


class Mode(str, Enum):
    equal_multiplier = "equal-multiplier"
    equal_perturbation = "equal-perturbation"


class Targets(str, Enum):
    random = "random"
    least_likely = "least-likely"


class ImageFormat(str, Enum):
    png = "png"
    npy = "npy"


def parse_number(value: Optional[str], option: str) -> Optional[float]:
    """A float, also written as a fraction (``1/255``)."""
    if value is None:
        return None
    try:
        return float(Fraction(value)) if "/" in value else float(value)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{option} must be a number such as 0.01 or 1/255, got {value!r}") from None


def _shape(value: Optional[str]) -> Optional[tuple[int, int, int]]:
    if value is None:
        return None
    try:
        parts = tuple(int(p) for p in value.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise ConfigError(f"--image-shape must be C,H,W such as 3,224,224, got {value!r}")
    return parts  # type: ignore[return-value]


UNIFIED_ONLY = ("loss", "mode", "tau", "norm")


@command(app, "attack")
def attack(
    attack_name: AttackName = typer.Option(AttackName.unified, "--attack", help="unified (one loss source), or a full attack: ifgs, cw, lbfgs."),
    loss: Optional[Loss] = typer.Option(None, "--loss", help="Perturbation source of the unified iteration [default: ce-sign]."),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="Step size rule of the unified iteration [default: equal-multiplier]."),
    n: int = typer.Option(500, "--n", "-n", help="Number of correctly classified images to attack."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-T", help="Iterations T [default: 500; ifgs 100]; per search step for cw, lbfgs [default: 100, 50]."),
    alpha: Optional[str] = typer.Option(None, "--alpha", help="Multiplier α (equal multiplier, IFGS) [default: 1/255]."),
    tau: Optional[str] = typer.Option(None, "--tau", help="Step size τ = ‖αP‖_p (equal perturbation) [default: one 1/255 IFGS step]."),
    norm: Optional[str] = typer.Option(None, "--norm", help="p of the equal-perturbation step: 1, 2 or inf [default: 2]."),
    epsilon: Optional[str] = typer.Option(None, "--epsilon", help="L∞ ball radius around the image (off by default)."),
    kappa: Optional[float] = typer.Option(None, "--kappa", help="Confidence margin κ of m-logit / CW [default: 0]."),
    c_init: Optional[str] = typer.Option(None, "--c-init", help="Initial constant c (cw, lbfgs)."),
    search_steps: Optional[int] = typer.Option(None, "--search-steps", help="Search steps over c (cw, lbfgs)."),
    lr: Optional[str] = typer.Option(None, "--lr", help="Adam learning rate (cw) [default: 0.01]."),
    abort_early: Optional[bool] = typer.Option(None, "--abort-early/--no-abort-early", help="Stop a CW search step when the loss stalls [default: on]."),
    early_stop: Optional[bool] = typer.Option(None, "--early-stop/--full", help="Stop a batch once every image reaches its target (unified, ifgs) [default: --full]."),
    check_every: Optional[int] = typer.Option(None, "--check-every", help="Early-stop check interval (iterations) [default: 10]."),
    model: str = typer.Option("digits-cnn", "--model", help="digits-cnn or a torchvision architecture (resnet50, …)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Weights file (state dict), or 'random'."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="digits, imagefolder, synthetic [default: the model's]."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="ROOT/<class>/<image> folder for imagefolder."),
    image_size: int = typer.Option(224, "--image-size", help="Crop size for imagefolder images."),
    image_shape: Optional[str] = typer.Option(None, "--image-shape", help="C,H,W of synthetic images."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Images per batch (one commit each)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    seed: int = typer.Option(0, "--seed", help="Seed of image selection and targets."),
    targets: Targets = typer.Option(Targets.random, "--targets", help="Target selection."),
    image_format: ImageFormat = typer.Option(ImageFormat.png, "--image-format", help="Adversarial image files: png (8-bit) or npy (float32)."),
    save_images: bool = typer.Option(True, "--save-images/--no-save-images", help="Store adversarial image files."),
    name: Optional[str] = typer.Option(None, "--name", help="A label for the run."),
    resume: Optional[int] = typer.Option(None, "--resume", help="Finish interrupted run RUN (its stored options are used)."),
    join: Optional[int] = typer.Option(None, "--join", help="Work on stored run RUN beside its other workers (any machine, any time)."),
    join_key: Optional[str] = typer.Option(None, "--join-key", help="Share one run among every process given this key: the first creates it, the others join [default under torchrun: its launch id]."),
    plan_only: bool = typer.Option(False, "--plan-only", help="Store the run and its plan, attack nothing; workers then --join it."),
    lease: float = typer.Option(60.0, "--lease", help="Seconds a claimed batch stays this worker's without a heartbeat (another worker takes it after)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run a targeted attack and record every image's trajectory."""
    import math

    from advdb.cli.progress import RichProgress
    from advdb.launch import launch_from_env
    from advdb.runner import AttackSpec, WorkerOptions, join_attack, resume_attack, run_attack

    if not math.isfinite(lease) or lease <= 0:
        raise ConfigError(f"--lease must be a positive number of seconds, got {lease}")
    if sum(x is not None for x in (resume, join)) + plan_only > 1:
        raise ConfigError("--resume, --join and --plan-only exclude each other: give one")
    launch = launch_from_env()
    options = WorkerOptions(lease_seconds=lease, rank=launch.rank)
    progress = RichProgress(attack_name.value if attack_name != AttackName.unified else f"{(loss or Loss.ce_sign).value}")
    if launch.rank not in (None, 0):
        progress.description += f" (rank {launch.rank})"
    store = _store()
    try:
        if resume is not None and launch.rank is not None:  # every rank resumes: they work on it together
            run_id = join_attack(store, resume, progress=progress, device=device, options=options)
        elif resume is not None:
            run_id = resume_attack(store, resume, progress=progress, device=None if device == "auto" else device, options=options)
        elif join is not None:
            run_id = join_attack(store, join, progress=progress, device=device, options=options)
        else:
            params: dict[str, Any] = {}
            given = {"loss": loss.value if loss else None, "mode": mode.value if mode else None,
                     "iterations": iterations, "alpha": parse_number(alpha, "--alpha"), "tau": parse_number(tau, "--tau"),
                     "norm": norm, "epsilon": parse_number(epsilon, "--epsilon"), "kappa": kappa,
                     "c_init": parse_number(c_init, "--c-init"), "search_steps": search_steps, "lr": parse_number(lr, "--lr"),
                     "abort_early": abort_early, "early_stop": early_stop}
            if attack_name == AttackName.unified:
                from advdb.attacks.engine import parse_norm

                params = {k: v for k, v in given.items() if v is not None}
                params.setdefault("loss", Loss.ce_sign.value)
                if "norm" in params:
                    params["norm"] = parse_norm(params["norm"])
                if check_every is not None:
                    params["check_every"] = check_every
            else:
                wrong = [f"--{k}" for k in UNIFIED_ONLY if given.get(k) is not None]
                if wrong:
                    raise ConfigError(f"{', '.join(wrong)} {'applies' if len(wrong) == 1 else 'apply'} only to --attack unified")
                params = {k: v for k, v in given.items() if v is not None}
                if check_every is not None:
                    params["check_every"] = check_every
            spec = AttackSpec(
                attack=attack_name.value, params=params, model=model, weights=weights, dataset=dataset, data_dir=data_dir,
                image_size=image_size, image_shape=_shape(image_shape), n=n, batch_size=batch_size, device=device,
                seed=seed, targets=targets.value, image_format=image_format.value, save_images=save_images, name=name,
            )
            key = join_key or (launch.key if not plan_only else None)
            run_id = run_attack(store, spec, progress=progress, join_key=key, plan_only=plan_only, options=options,
                                creates_run=join_key is not None or launch.creates_run)
        progress.close()
        if launch.creates_run:  # under torchrun, rank 0 speaks for the run
            _print_run_summary(store, run_id, as_json)
    finally:
        progress.close()
        store.close()


def _print_run_summary(store: Any, run_id: int, as_json: bool) -> None:
    from advdb.store.runs import get_run, run_counts

    run, counts = get_run(store, run_id), run_counts(store, run_id)
    info = {
        "run_id": run.run_id, "status": run.status, "attack": run.attack, "loss": run.loss, "mode": run.mode,
        "images": counts.samples, "succeeded": counts.succeeded, "trajectory_rows": counts.trajectory_rows,
        "artifacts": counts.artifacts, "wall_seconds": run.wall_seconds, "device": run.device,
    }
    if as_json:
        render.print_json(info)
        return
    rate = counts.succeeded / counts.samples if counts.samples else 0.0
    if run.status == "planned":
        render.console.print(f"run {run.run_id} planned: {run.n_images} images in batches of {run.batch_size}; "
                             f"start workers with `advdb attack --join {run.run_id}`")
        return
    render.console.print(
        f"run {run.run_id} {run.status}: {counts.samples} images, {rate:.1%} reached their target, "
        f"{counts.trajectory_rows:,} trajectory rows, {counts.artifacts} image files, {run.wall_seconds or 0:.1f} s on {run.device}"
    )


# --- runs --------------------------------------------------------------------------------


def _run_row(run: Any, classifiers: dict[int, str], workers: dict[int, tuple[int, int]]) -> dict[str, Any]:
    total, live = workers.get(run.run_id, (0, 0))
    return {
        "run_id": run.run_id, "kind": run.kind, "status": run.status, "attack": run.attack, "loss": run.loss,
        "mode": run.mode, "model": classifiers.get(run.classifier_id or -1), "n_images": run.n_images,
        "iterations": run.iterations, "seed": run.seed, "device": run.device, "created_at": run.created_at,
        "wall_seconds": run.wall_seconds, "name": run.name, "workers": total, "live_workers": live,
    }


@command(runs_app, "list")
def runs_list(
    kind: Optional[str] = typer.Option(None, "--kind", help="attack, detector or circles."),
    status: Optional[str] = typer.Option(None, "--status", help="planned, running, finished, failed or interrupted."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Show at most this many (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs, newest first."""
    from sqlalchemy import select

    from advdb.store.models import Classifier
    from advdb.store.runs import list_runs
    from advdb.store.workers import worker_counts

    with _store() as store:
        runs = list_runs(store, kind=kind, status=status, limit=limit)
        with store.session() as s:
            classifiers = dict(s.execute(select(Classifier.classifier_id, Classifier.name)).all())
        workers = worker_counts(store, [r.run_id for r in runs])
    rows = [_run_row(r, classifiers, workers) for r in runs]
    if as_json:
        render.print_json(rows)
        return
    if not rows:
        render.console.print("no runs yet: start one with `advdb attack --loss ce-sign --n 500`")
        return
    cols = ["run_id", "kind", "status", "attack", "loss", "mode", "model", "n_images", "iterations", "device", "workers",
            "created_at", "wall_seconds"]
    render.console.print(render.rich_table(cols, ([r[c] for c in cols] for r in rows)))


@command(runs_app, "show")
def runs_show(run_id: int = typer.Argument(..., help="Run id."), as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one run: status, counts, full configuration and versions."""
    from dataclasses import asdict

    from advdb.store.runs import get_run, run_counts
    from advdb.store.workers import list_workers

    with _store() as store:
        run = get_run(store, run_id)
        counts = asdict(run_counts(store, run_id))
        workers = [asdict(w) for w in list_workers(store, run_id)]
    info = {c.name: getattr(run, c.name) for c in run.__table__.columns}
    info["counts"] = counts
    info["workers"] = workers
    if as_json:
        render.print_json(info)
        return
    scalar = [(k, v) for k, v in info.items() if not isinstance(v, (dict, list))]
    render.console.print(render.rich_table(["field", "value"], scalar, title=f"run {run_id}"))
    render.console.print(render.rich_table(["count", "value"], counts.items()))
    if workers:
        cols = ["worker_id", "host", "pid", "device", "rank", "status", "live", "batches_done", "heartbeat_at"]
        render.console.print(render.rich_table(cols, ([w[c] for c in cols] for w in workers), title="workers"))
    render.console.print("config:")
    render.console.print_json(data=info["config"], default=str)
    render.console.print("versions:")
    render.console.print_json(data=info["versions"])


@command(runs_app, "delete")
def runs_delete(
    run_id: int = typer.Argument(..., help="Run id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a run: its rows in every table and its adversarial image files."""
    from advdb.store.runs import delete_run, get_run, run_counts

    with _store() as store:
        run = get_run(store, run_id)
        counts = run_counts(store, run_id)
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"deleting run {run_id} needs confirmation: pass --yes")
            typer.confirm(
                f"Delete run {run_id} ({run.kind}, {run.status}) with {counts.trajectory_rows:,} trajectory rows "
                f"and {counts.artifacts} image files?", abort=True, err=True,
            )
        n = delete_run(store, run_id)
    render.console.print(f"deleted run {run_id} ({n:,} rows)")


# --- sql ---------------------------------------------------------------------------------


class OutFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@command(app, "sql")
def sql(
    query: str = typer.Argument(..., help="A read-only SQL query (DuckDB dialect); tables: runs, samples, trajectory, …"),
    fmt: OutFormat = typer.Option(OutFormat.table, "--format", "-f", help="Output format."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file (required for parquet)."),
    allow_files: bool = typer.Option(False, "--allow-files", help="Let the query read files (read_csv, read_parquet, glob …) to join your own data."),
) -> None:
    """Run read-only SQL over the store with DuckDB (no file access unless --allow-files)."""
    from advdb.analytics.query import QuerySession

    if fmt == OutFormat.parquet and out is None:
        raise ConfigError("--format parquet needs --out FILE")
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    with _store() as store:  # checks the schema; closed before DuckDB opens the file
        location = store.location
    with QuerySession(location, allow_files=allow_files) as session:
        _notices(session)
        table = session.query(query)
    render.print_arrow(table, fmt.value, out)


def _notices(session: Any) -> None:
    for note in session.notices:
        render.err_console.print(f"advdb: notice: {note}")


# --- detectors ---------------------------------------------------------------------------


class Optimizer(str, Enum):
    adam = "adam"
    sgd = "sgd"


class _EpochPrinter:
    def epoch(self, *, run_id: int, epoch: int, epochs: int, train_loss: float, test_accuracy: float) -> None:
        render.err_console.print(f"run {run_id} epoch {epoch + 1}/{epochs}: train loss {train_loss:.4f}, test accuracy {test_accuracy:.1%}")


@command(app, "retrain")
def retrain(
    arch: str = typer.Option("small-cnn", "--arch", help="small-cnn, or a torchvision classifier: alexnet, resnet18, vgg16, resnet34, resnet152, …"),
    sources: Optional[str] = typer.Option(None, "--sources", help="Attack run ids whose adversarial images to detect, comma-separated (one: Table II; several: Table III)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="ImageNet weights for a torchvision --arch [default: torchvision's cache if present]."),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(64, "--batch-size", "-b"),
    optimizer: Optimizer = typer.Option(Optimizer.adam, "--optimizer"),
    lr: str = typer.Option("1e-3", "--lr", help="Learning rate."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay", help="SGD weight decay."),
    step_size: Optional[int] = typer.Option(None, "--step-size", help="Epochs between learning-rate decays [default: epochs/3]."),
    gamma: float = typer.Option(0.1, "--gamma", help="Learning-rate decay factor."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of images held out for testing."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Resize images to this side [default: 224 for torchvision]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the initialisation and the shuffling."),
    device: str = typer.Option("auto", "--device"),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes (use several on a GPU)."),
    resume: Optional[int] = typer.Option(None, "--resume", help="Continue detector run RUN from its last finished epoch."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train a detector (genuine vs adversarial) on the stored adversarial images of attack runs."""
    from sqlalchemy import select

    from advdb.detectors import DetectorSpec, resume_detector, train_detector
    from advdb.store.models import DetectorResult

    with _store() as store:
        if resume is not None:
            run_id = resume_detector(store, resume, progress=_EpochPrinter())
        else:
            ids = _run_ids(sources)
            if not ids:
                raise ConfigError("--sources needs attack run ids, such as --sources 3 or --sources 3,4,5,6")
            spec = DetectorSpec(arch=arch, sources=ids, weights=weights, epochs=epochs, batch_size=batch_size,
                                optimizer=optimizer.value, lr=parse_number(lr, "--lr") or 0.0, momentum=momentum,
                                weight_decay=weight_decay, step_size=step_size, gamma=gamma, test_fraction=test_fraction,
                                image_size=image_size, seed=seed, device=device, workers=workers)
            run_id = train_detector(store, spec, progress=_EpochPrinter())
        with store.session() as s:
            results = [(r.group_name, r.n_images, r.accuracy, r.epoch) for r in
                       s.scalars(select(DetectorResult).where(DetectorResult.run_id == run_id))]
    if as_json:
        render.print_json({"run_id": run_id, "results": [dict(zip(("group", "n_images", "accuracy", "epoch"), r)) for r in results]})
        return
    render.console.print(render.rich_table(["group", "test images", "accuracy", "best epoch"],
                                           [(g, n, f"{a:.1%}", e) for g, n, a, e in results], title=f"detector run {run_id}"))


# --- the whole study -------------------------------------------------------------------------


class PresetName(str, Enum):
    digits = "digits"
    imagenet = "imagenet"


@command(app, "reproduce")
def reproduce(
    preset: PresetName = typer.Option(PresetName.digits, "--preset", help="digits (embedded default, CPU, minutes) or imagenet (ResNet-50, GPU)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the reports [default: reports/ beside the store]."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="ImageNet validation folder (imagenet preset)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="ResNet-50 weights file (imagenet preset)."),
    with_torchvision_detectors: bool = typer.Option(False, "--with-torchvision-detectors", help="Also train ResNet-18 detectors (digits preset)."),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run the whole paper: the sources in both modes, the full attacks, detectors, circles, every report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from advdb.analytics.findings import measure_findings
    from advdb.analytics.query import QuerySession
    from advdb.analytics.reports import REPORTS, build, default_out_dir, write_report
    from advdb.analytics.selection import MissingDataError
    from advdb.reproduce import run_study

    bar = Progress(TextColumn("[bold]reproduce[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                   TimeElapsedColumn(), console=render.err_console, disable=not render.err_console.is_terminal)

    class _Steps:
        task = None

        def step(self, *, index: int, total: int, label: str, state: str) -> None:
            if self.task is None:
                self.task = bar.add_task(label, total=total)
            bar.update(self.task, completed=index, description=f"{label} ({state})")
            if state != "start" and not render.err_console.is_terminal:
                render.err_console.print(f"[{index}/{total}] {label}: {state}")

    with bar, _store() as store:
        result = run_study(store, preset.value, progress=_Steps(), device=device, data_dir=data_dir, weights=weights,
                           with_torchvision_detectors=with_torchvision_detectors, seed=seed)
        location = store.location
    out_dir = out or default_out_dir(location)
    written = []
    with QuerySession(location) as session:
        _notices(session)
        for n in REPORTS:
            try:
                written += write_report(build(session, n), n, out_dir)
            except MissingDataError as exc:
                render.err_console.print(f"skipped {n}: {exc}")
        findings = measure_findings(session)
    render.console.print(f"{len(result.runs)} steps ({len(result.skipped)} already in the store) in {result.seconds:.0f} s; "
                         f"{len(written)} report files in {out_dir}")
    verdict = {True: "agrees", False: "differs", None: "no data"}
    render.console.print(render.rich_table(["#", "finding (paper)", "measured in this store", "verdict"],
                                           [(f.number, f.claim, f.measured, verdict[f.agrees]) for f in findings],
                                           title="The paper's findings"))


# --- the 2-D experiment -------------------------------------------------------------------


@command(app, "circles")
def circles(
    n: int = typer.Option(200, "--n", help="Outer-ring points to attack."),
    iterations: int = typer.Option(100, "--iterations", "-T", help="Iterations of each attack."),
    mode: Mode = typer.Option(Mode.equal_perturbation, "--mode", help="Step size rule of the attacks."),
    grid: int = typer.Option(121, "--grid", help="Grid points per side for the gradient maps."),
    seed: int = typer.Option(0, "--seed", help="Seed of point selection."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """The 2-D circles experiment: two rings, a small ReLU net, the four sources and their gradient maps (figure 6)."""
    from advdb.circles import CirclesSpec, run_circles

    with _store() as store:
        run_id = run_circles(store, CirclesSpec(n=n, iterations=iterations, mode=mode.value, grid=grid, seed=seed, device=device))
    render.console.print(f"circles run {run_id} finished: `advdb report fig6` draws it")


# --- reports -----------------------------------------------------------------------------


def _run_ids(value: Optional[str]) -> Optional[list[int]]:
    if not value:
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"--runs takes run ids separated by commas, such as 3,4,5; got {value!r}") from None


@command(app, "report")
def report(
    name: str = typer.Argument(..., help="table1, table2, table3, fig1 … fig6, subspaces, or all."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the files [default: reports/ beside the store]."),
    runs: Optional[str] = typer.Option(None, "--runs", help="Attack runs to compare (ids, comma-separated) [default: the latest of each source × mode]."),
    confidence: float = typer.Option(0.9, "--confidence", help="Threshold h of the subspaces S1/S2/S3."),
    examples: int = typer.Option(4, "--examples", help="Images shown in fig5."),
) -> None:
    """Write the paper's tables (Markdown, CSV, LaTeX) and figures (PNG, PDF) from the store."""
    from advdb.analytics.query import QuerySession, checked_location
    from advdb.analytics.reports import REPORTS, build, default_out_dir, get_report, write_report
    from advdb.analytics.selection import MissingDataError

    names = list(REPORTS) if name == "all" else [get_report(name).name]
    location = checked_location(State.db)
    out_dir = out or default_out_dir(location)
    written, skipped = 0, []
    with QuerySession(location) as session:
        _notices(session)
        for n in names:
            try:
                result = build(session, n, runs=_run_ids(runs), confidence=confidence, examples=examples)
            except MissingDataError as exc:
                if name != "all":
                    raise
                skipped.append(f"skipped {n}: {exc}")
                continue
            files = write_report(result, n, out_dir)
            written += 1
            if result.display is not None:
                cols, rows = result.display
                render.console.print(render.rich_table(cols, rows, title=REPORTS[n].title))
            for note in result.notes:
                render.err_console.print(f"{n}: {note}")
            render.console.print(f"{n}: " + ", ".join(str(f) for f in files))
    if written == 0:
        raise MissingDataError("no report could be made: the store has no finished attack runs yet; start with `advdb attack --loss ce-sign --n 500`")
    for line in skipped:  # only when something was written: an empty store gets the one line above
        render.err_console.print(line if len(line) <= 200 else line[:199] + "…")


# --- registries --------------------------------------------------------------------------


class Registry(str, Enum):
    models = "models"
    datasets = "datasets"
    attacks = "attacks"
    losses = "losses"


@command(app, "list")
def list_registry(what: Registry = typer.Argument(..., help="models, datasets, attacks or losses.")) -> None:
    """List the registered models, datasets, attacks or loss sources."""
    if what == Registry.models:
        from advdb.models import list_classifiers

        items = list_classifiers()
    elif what == Registry.datasets:
        from advdb.data import list_datasets

        items = list_datasets()
    elif what == Registry.attacks:
        from advdb.attacks.registry import list_attacks

        items = list_attacks()
    else:
        from advdb.attacks.sources import LOSSES

        items = {name: "" for name in LOSSES}
    render.console.print(render.rich_table(["name", "description"], items.items()))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="advdb")
