"""``advdb sql``: read-only SQL over the store, through DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from advdb.errors import ConfigError

from . import context, render
from .errors import command
from .options import OutFormat

app = typer.Typer()


def print_notices(session: Any) -> None:
    """What the query layer noticed (a columnar copy rebuilt, …), on stderr."""
    for note in session.notices:
        render.err_console.print(f"advdb: notice: {note}")


@command(app, "sql")
def sql(
    query: str = typer.Argument(
        ..., help="A read-only SQL query (DuckDB dialect); tables: runs, samples, trajectory, …"
    ),
    fmt: OutFormat = typer.Option("table", "--format", "-f", help="Output format."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file (required for parquet)."),
    allow_files: bool = typer.Option(
        False, "--allow-files", help="Let the query read files (read_csv, read_parquet, glob …) to join your own data."
    ),
) -> None:
    """Run read-only SQL over the store with DuckDB (no file access unless --allow-files)."""
    from advdb.analytics.query import QuerySession

    if fmt.value == "parquet" and out is None:
        raise ConfigError("--format parquet needs --out FILE")
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    with context.store() as store:  # checks the schema; closed before DuckDB opens the file
        location = store.location
    with QuerySession(location, allow_files=allow_files) as session:
        print_notices(session)
        table = session.query(query)
    render.print_arrow(table, fmt.value, out)
