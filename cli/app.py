"""The advdb command line. Thin: parse options, call the library, render the result.

The root command (``--db``, ``--version``) and one Typer sub-app per command group, each in
its own module. Errors from the library (``advdb.errors.AdvdbError``) become one line on
stderr and the error's exit code in one place, :mod:`advdb.cli.errors`.
"""

from __future__ import annotations

import typer

from advdb import __version__

from . import attack, catalogue, db, defend, docs, export, report, retrain, runs, sql, study, transfer, ui
from .context import State
from .errors import AdvdbGroup

app = typer.Typer(
    name="advdb",
    cls=AdvdbGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help=(
        "Run targeted gradient-based adversarial attacks, record every image's trajectory in SQL, query it with DuckDB."
    ),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"advdb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    db: str | None = typer.Option(
        None,
        "--db",
        envvar="ADVDB_DATABASE_URL",
        show_envvar=True,
        help="Store URL: sqlite:///FILE (default ./advdb.db) or postgresql://USER@HOST/DB.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    State.db = db


# In the order `advdb --help` lists them.
for group in (
    attack.app,
    sql.app,
    retrain.app,
    transfer.app,
    defend.app,
    study.app,
    report.app,
    ui.app,
    export.app,
    catalogue.app,
    db.app,
    runs.app,
    docs.app,
):
    app.add_typer(group)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="advdb")
