"""``advdb reproduce`` (the whole paper) and ``advdb circles`` (its 2-D experiment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from . import context, render
from .errors import command
from .options import (
    MemoryFormat,
    Mode,
    Precision,
    PresetName,
    compile_option,
    memory_format_option,
    parse_count,
    precision_option,
)
from .sql import print_notices

app = typer.Typer()


class _Steps:
    """Implements :class:`advdb.progress.StepProgress`: a bar on a terminal, one line per step otherwise."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("[bold]reproduce[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            console=render.err_console,
            disable=not render.err_console.is_terminal,
        )
        self.task: Any = None

    def step(self, *, index: int, total: int, label: str, state: str) -> None:
        if self.task is None:
            self.task = self.bar.add_task(label, total=total)
        self.bar.update(self.task, completed=index, description=f"{label} ({state})")
        if state != "start" and not render.err_console.is_terminal:
            render.err_console.print(f"[{index}/{total}] {label}: {state}")


@command(app, "reproduce")
def reproduce(
    preset: PresetName = typer.Option(
        "digits",
        "--preset",
        help="digits (embedded default, CPU, minutes), imagenet-sample (EfficientNet-Lite0 on 20 real ImageNet "
        "images, CPU), mnist (a clean and a robust LeNet-5 on real MNIST, CPU) or imagenet (ResNet-50, GPU).",
    ),
    n: str | None = typer.Option(
        None,
        "--n",
        "-n",
        help="Images per unified attack run, or all (every correctly classified one) [default: the preset's].",
    ),
    iterations: int | None = typer.Option(
        None, "--iterations", "-T", help="Iterations T of the unified runs and IFGS [default: the preset's]."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for the reports [default: reports/ beside the store]."
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="ImageNet validation folder (imagenet preset)."),
    weights: str | None = typer.Option(None, "--weights", help="ResNet-50 weights file (imagenet preset)."),
    with_torchvision_detectors: bool = typer.Option(
        False, "--with-torchvision-detectors", help="Also train ResNet-18 detectors (digits preset)."
    ),
    device: str = typer.Option("auto", "--device"),
    precision: Precision = precision_option(),
    compile: bool = compile_option(),
    memory_format: MemoryFormat = memory_format_option(),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run the whole paper: the sources in both modes, the full attacks, detectors, circles, every report."""
    from advdb.analytics.reports import default_out_dir
    from advdb.reproduce import STUDY_PRESETS, run_study

    steps = _Steps()
    with steps.bar, context.store() as store:
        result = run_study(
            store,
            preset.value,
            progress=steps,
            notice=lambda line: render.err_console.print(line),
            device=device,
            data_dir=data_dir,
            weights=weights,
            with_torchvision_detectors=with_torchvision_detectors,
            seed=seed,
            n=None if n is None else parse_count(n),
            iterations=iterations,
            precision=precision.value,
            compile=compile,
            memory_format=memory_format.value,
        )
        location = store.location
    models = STUDY_PRESETS[preset.value].models
    out_dir = out or default_out_dir(location)
    render.console.print(
        f"{len(result.runs)} steps ({len(result.skipped)} already in the store) in {result.seconds:.0f} s"
    )
    for model in models:
        folder = out_dir / model if len(models) > 1 else out_dir
        written, findings, curves = _reports_and_findings(location, folder, model if len(models) > 1 else None)
        render.console.print(f"{len(written)} report files in {folder}")
        on = f" on {model}" if len(models) > 1 else ""
        render.print_table(
            ["#", "finding (paper)", "measured in this store", "verdict"],
            [(f.number, f.claim, _measured(f), f.verdict) for f in findings],
            title=f"The paper's findings{on} (each value: mean [95% bootstrap interval])",
            humanize=False,
            wrap=["finding (paper)", "measured in this store"],
        )
        for line in curves:  # what the curves add (report curves)
            render.console.print(line)


def _measured(finding: Any) -> str:
    """What was measured, and why a finding that does not agree does not: its other comparisons."""
    why = [c for c in finding.comparisons if not c.endswith("(agrees)")] if finding.verdict != "agrees" else []
    return "; ".join([finding.measured, *why])


def _reports_and_findings(location: Any, out_dir: Path, model: str | None) -> tuple[list[Path], list[Any], list[str]]:
    """Every report the store has data for, the paper's findings measured on it and what the
    curves add (on ``model``'s runs when the study attacked several classifiers)."""
    from advdb.analytics.curves import curve_summary
    from advdb.analytics.findings import measure_findings
    from advdb.analytics.query import QuerySession
    from advdb.analytics.reports import REPORTS, build, write_report
    from advdb.analytics.selection import MissingDataError, select_runs

    written: list[Path] = []
    with QuerySession(location) as session:
        print_notices(session)
        for name in REPORTS:
            try:
                written += write_report(build(session, name, model=model), name, out_dir)
            except MissingDataError as exc:
                render.err_console.print(f"skipped {name}: {exc}")
        selection = select_runs(session, model=model)
        findings = measure_findings(session, selection)
        curves = curve_summary(session, selection)
    return written, findings, curves


@command(app, "circles")
def circles(
    n: int = typer.Option(200, "--n", help="Outer-ring points to attack."),
    iterations: int = typer.Option(100, "--iterations", "-T", help="Iterations of each attack."),
    mode: Mode = typer.Option("equal-perturbation", "--mode", help="Step size rule of the attacks."),
    grid: int = typer.Option(121, "--grid", help="Grid points per side for the gradient maps."),
    seed: int = typer.Option(0, "--seed", help="Seed of point selection."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """The 2-D circles experiment: two rings, a small ReLU net, the four sources and their gradient maps (figure 6)."""
    from advdb.circles import CirclesSpec, run_circles

    with context.store() as store:
        run_id = run_circles(
            store, CirclesSpec(n=n, iterations=iterations, mode=mode.value, grid=grid, seed=seed, device=device)
        )
    render.console.print(f"circles run {run_id} finished: `advdb report fig6` draws it")
