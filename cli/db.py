"""``advdb db``: create and upgrade the store's schema, and show or set its artifact root."""

from __future__ import annotations

from pathlib import Path

import typer

from . import context, render
from .context import State
from .errors import command

app = typer.Typer(name="db", help="Create and upgrade the store's schema.", no_args_is_help=True, add_completion=False)


@command(app, "upgrade")
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


@command(app, "current")
def db_current(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the store's schema revision and this advdb's head."""
    from advdb.store import open_store
    from advdb.store.migrate import current_revision, head_revision, revision_state

    with open_store(State.db, check_schema=False) as store:
        cur, head = current_revision(store), head_revision()
        where = store.location.masked
    state = {
        "up to date": "up to date",
        "empty": "empty: run `advdb db upgrade`",
        "behind": "behind: run `advdb db upgrade`",
        "ahead": "newer than this advdb knows: upgrade advdb",
    }[revision_state(cur)]
    if as_json:
        render.print_json({"store": where, "current": cur, "head": head, "up_to_date": cur == head})
    else:
        render.console.print(f"{where}: revision {cur or '∅'} (head {head}, {state})")


@command(app, "artifact-root")
def db_artifact_root(
    path: Path | None = typer.Argument(
        None, help="Record this folder as the new root (move the run-* folders there first)."
    ),
) -> None:
    """Show or set the store's artifact root: the one folder where every worker writes image files."""
    from advdb.store.artifact_root import artifact_root, recorded_root, set_artifact_root

    with context.store() as store:
        if path is not None:
            render.console.print(f"artifact root of {store.location.masked}: {set_artifact_root(store, path)}")
            return
        recorded, used = recorded_root(store), artifact_root(store)
        where = store.location.masked
    note = (
        "" if recorded is None or recorded == used else f" (recorded {recorded}; ADVDB_ARTIFACTS_DIR overrides it here)"
    )
    state = " (not recorded yet: the first attack that saves images records it)" if recorded is None else ""
    render.console.print(f"artifact root of {where}: {used}{note}{state}")
