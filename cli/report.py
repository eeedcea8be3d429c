"""``advdb report``: the paper's tables and figures, written from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from advdb.vocabulary import parse_run_ids

from . import render
from .context import State
from .errors import command
from .sql import print_notices

app = typer.Typer()


@command(app, "report")
def report(
    name: str = typer.Argument(
        ...,
        help="table1, table2, table3, fig1 … fig6, subspaces, margins, transfer, defenses, curves, robustness, or all.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for the files [default: reports/ beside the store]."
    ),
    runs: str | None = typer.Option(
        None,
        "--runs",
        help="Attack runs to compare (ids, comma-separated) [default: the latest of each source × mode; for "
        "robustness also the latest IFGS, CW and L-BFGS runs, and --runs may name those].",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Compare the newest runs on this classifier (a store that attacked several, e.g. the mnist study's).",
    ),
    confidence: float = typer.Option(0.9, "--confidence", help="Threshold h of the subspaces S1/S2/S3."),
    examples: int = typer.Option(4, "--examples", help="Images shown in fig5."),
) -> None:
    """Write the paper's tables (Markdown, CSV, LaTeX) and figures (PNG, PDF) from the store."""
    from advdb.analytics.query import QuerySession, checked_location
    from advdb.analytics.reports import REPORTS, default_out_dir, get_report
    from advdb.analytics.selection import MissingDataError

    names = list(REPORTS) if name == "all" else [get_report(name).name]
    run_ids = parse_run_ids(runs, "--runs")
    location = checked_location(State.db)
    out_dir = out or default_out_dir(location)
    written, skipped = 0, []
    with QuerySession(location) as session:
        print_notices(session)
        for n in names:
            try:
                _write_report(session, n, out_dir, runs=run_ids, model=model, confidence=confidence, examples=examples)
                written += 1
            except MissingDataError as exc:
                if name != "all":
                    raise
                skipped.append(f"skipped {n}: {exc}")
    if written == 0:
        raise MissingDataError(
            "no report could be made: the store has no finished attack runs yet; "
            "start with `advdb attack --loss ce-sign --n 500`"
        )
    for line in skipped:  # only when something was written: an empty store gets the one line above
        render.err_console.print(line if len(line) <= 200 else line[:199] + "…")


def _write_report(session: Any, name: str, out_dir: Path, **options: Any) -> None:
    """Build one report, write its files and show its table and notes."""
    from advdb.analytics.reports import REPORTS, ReportOutput, build, write_report

    if name == "robustness" and options["runs"]:  # any attack runs, full attacks too: not a source × mode selection
        from advdb.analytics.curves import robustness_report

        result = ReportOutput(*robustness_report(session, None, options["runs"]))
    else:
        result = build(session, name, **options)
    files = write_report(result, name, out_dir)
    if result.display is not None:
        cols, rows = result.display
        render.print_table(cols, rows, title=REPORTS[name].title, humanize=False)
    for note in result.notes:
        render.err_console.print(f"{name}: {note}")
    render.console.print(f"{name}: " + ", ".join(str(f) for f in files))
