"""``advdb runs``: list, show and delete runs."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import typer

from advdb import formatting
from advdb.errors import ConfigError

from . import context, render
from .errors import command

app = typer.Typer(name="runs", help="List, show and delete runs.", no_args_is_help=True, add_completion=False)

LIST_COLUMNS = [
    "run_id",
    "kind",
    "status",
    "attack",
    "loss",
    "mode",
    "model",
    "n_images",
    "iterations",
    "device",
    "workers",
    "created_at",
    "wall_seconds",
]
# What goes first when a terminal is narrow (run, kind, status, loss and mode stay).
LIST_DROP_ORDER = ["device", "workers", "created_at", "n_images", "iterations", "model", "wall_seconds", "attack"]
WORKER_COLUMNS = ["worker_id", "host", "pid", "device", "rank", "status", "live", "batches_done", "heartbeat_at"]


def _run_row(run: Any, classifiers: dict[int, str], workers: dict[int, tuple[int, int]]) -> dict[str, Any]:
    total, live = workers.get(run.run_id, (0, 0))
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "status": run.status,
        "attack": run.attack,
        "loss": run.loss,
        "mode": run.mode,
        "model": classifiers.get(run.classifier_id or -1),
        "n_images": run.n_images,
        "iterations": run.iterations,
        "seed": run.seed,
        "device": run.device,
        "created_at": run.created_at,
        "wall_seconds": run.wall_seconds,
        "name": run.name,
        "workers": total,
        "live_workers": live,
    }


@command(app, "list")
def runs_list(
    kind: str | None = typer.Option(None, "--kind", help="attack, detector, circles, transfer or defense."),
    status: str | None = typer.Option(None, "--status", help="planned, running, finished, failed or interrupted."),
    limit: int | None = typer.Option(None, "--limit", help="Show at most this many (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs, newest first."""
    from advdb.store.catalogue import classifier_names
    from advdb.store.runs import list_runs, settle_abandoned
    from advdb.store.workers import worker_counts

    with context.store() as store:
        settle_abandoned(store, list_runs(store, status="running"))  # runs whose every worker is gone
        runs = list_runs(store, kind=kind, status=status, limit=limit)
        classifiers = classifier_names(store)
        workers = worker_counts(store, [r.run_id for r in runs])
    rows = [_run_row(r, classifiers, workers) for r in runs]
    if as_json:
        render.print_json(rows)
        return
    if not rows:
        render.console.print("no runs yet: start one with `advdb attack --loss ce-sign --n 500`")
        return
    render.print_table(LIST_COLUMNS, ([r[c] for c in LIST_COLUMNS] for r in rows), drop=LIST_DROP_ORDER)


@command(app, "show")
def runs_show(
    run_id: int = typer.Argument(..., help="Run id."), as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Show one run: status, counts, full configuration and versions."""
    from advdb.store.runs import get_run, run_counts, settle_abandoned
    from advdb.store.workers import list_workers

    with context.store() as store:
        settle_abandoned(store, [get_run(store, run_id)])
        info = asdict(get_run(store, run_id))
        counts = asdict(run_counts(store, run_id))
        workers = [asdict(w) for w in list_workers(store, run_id)]
    info["counts"] = counts
    info["workers"] = workers
    if as_json:
        render.print_json(info)
        return
    scalar = [(k, v) for k, v in info.items() if not isinstance(v, (dict, list))]
    render.print_table(
        ["field", "value"], [(k, formatting.value(v, k)) for k, v in scalar], title=f"run {run_id}", humanize=False
    )
    render.print_table(["count", "value"], [(k, formatting.value(v, k)) for k, v in counts.items()], humanize=False)
    if workers:
        render.console.print(
            render.fitted_table(
                WORKER_COLUMNS,
                ([w[c] for c in WORKER_COLUMNS] for w in workers),
                title="workers",
                drop=["pid", "rank", "heartbeat_at"],
            )[0]
        )
    render.console.print("config:")
    render.console.print_json(data=info["config"], default=str)
    render.console.print("versions:")
    render.console.print_json(data=info["versions"])


@command(app, "delete")
def runs_delete(
    run_id: int = typer.Argument(..., help="Run id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(
        False, "--force", help="Delete it even while a live process works on it (that process then fails)."
    ),
) -> None:
    """Delete a run: its rows in every table and its adversarial image files."""
    from advdb.store.runs import delete_run, get_run, run_counts

    with context.store() as store:
        run = get_run(store, run_id)
        counts = run_counts(store, run_id)
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"deleting run {run_id} needs confirmation: pass --yes")
            typer.confirm(
                f"Delete run {run_id} ({run.kind}, {run.status}) with {counts.trajectory_rows:,} trajectory rows "
                f"and {counts.artifacts} image files?",
                abort=True,
                err=True,
            )
        n = delete_run(store, run_id, force=force)
    render.console.print(f"deleted run {run_id} ({n:,} rows)")
