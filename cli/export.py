"""``advdb export``: the store's tables as files other tools read (Parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from advdb.vocabulary import parse_run_ids

from . import render
from .context import State
from .errors import command
from .options import ExportFormat

app = typer.Typer()


@command(app, "export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created; files in it are replaced)."),
    fmt: ExportFormat = typer.Option("parquet", "--format", "-f", help="File format."),
    runs: str | None = typer.Option(None, "--runs", help="Only these runs (ids, comma-separated) [default: all]."),
) -> None:
    """Write the store's tables as Parquet (the trajectory partitioned by run) for pandas, Polars, Spark or DuckDB."""
    from advdb.analytics.export import export_parquet
    from advdb.analytics.query import checked_location

    run_ids = parse_run_ids(runs, "--runs")
    counts = export_parquet(checked_location(State.db), out, runs=run_ids)
    total = sum(counts.values())
    render.console.print(f"wrote {len(counts)} tables ({total:,} rows, format {fmt.value}) to {out}")
