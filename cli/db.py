"""``advdb db``: create and upgrade the store's schema, show or set its artifact root, check it
(``check``) and remove image files no row references (``gc``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from advdb import formatting
from advdb.errors import NotFoundError

from . import context, render
from .context import State
from .errors import command

if TYPE_CHECKING:
    from advdb.store import Store
    from advdb.store.integrity import CheckReport, GcReport

app = typer.Typer(
    name="db",
    help="Create and upgrade the store's schema; check it; remove stray image files.",
    no_args_is_help=True,
    add_completion=False,
)
# What a check prints in its table at most (--json lists every problem).
MAX_PROBLEM_ROWS = 200
EXIT_PROBLEMS = 1


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


def _existing_store() -> Store:
    """The store ``--db`` names, which must exist already (a check never creates one)."""
    from advdb.store import open_store
    from advdb.store.location import resolve_store

    location = resolve_store(State.db)
    if location.sqlite_path is not None and not location.sqlite_path.is_file():
        raise NotFoundError(f"there is no store at {location.sqlite_path}: check --db (or ADVDB_DATABASE_URL)")
    return open_store(State.db, create=False)


def _size(n: int) -> str:
    """``812 B``, ``4.2 kB``, ``1.3 GB``."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


class _FileBar:
    """Files checked (and hashed), on stderr when it is a terminal; implements ``CheckProgress``."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TimeRemainingColumn(),
            console=render.err_console,
            transient=True,
            disable=not render.err_console.is_terminal,
        )
        self.task: Any = None

    def start(self, *, files: int, hashing: bool) -> None:
        self.progress.start()
        self.task = self.progress.add_task("hashing" if hashing else "checking", total=files)

    def advance(self, files: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, files)

    def close(self) -> None:
        self.progress.stop()


def _check_summary(report: CheckReport) -> str:
    what = (
        f"{report.runs:,} runs, {report.batches:,} batches, {report.trajectory_rows:,} trajectory rows, "
        f"{report.files:,} image files {'hashed' if report.hashed else 'found (sizes only, --no-hash)'}, "
        f"columnar copy {report.columnar}; {formatting.duration(report.seconds)}"
    )
    if report.ok:
        return f"no problems ({what})"
    counts: dict[str, int] = {}
    for p in report.problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"{len(report.problems)} problems: {kinds} ({what})"


def _print_check(report: CheckReport, where: str, root: Path) -> None:
    render.console.print(f"{where} (artifact root {root})")
    if report.problems:
        rows = [(p.kind, p.run_id, p.batch_index, p.path, p.detail) for p in report.problems[:MAX_PROBLEM_ROWS]]
        render.print_table(["problem", "run", "batch", "path", "detail"], rows, humanize=False, wrap=["detail"])
        if len(report.problems) > MAX_PROBLEM_ROWS:
            render.err_console.print(f"({len(report.problems) - MAX_PROBLEM_ROWS} more problems: use --json)")
    for note in report.notes:
        render.err_console.print(f"note: {note}")
    render.console.print(_check_summary(report))


@command(app, "check")
def db_check(
    run_id: int | None = typer.Option(
        None, "--run", help="Check this run only (rows of deleted runs are then not looked for)."
    ),
    no_hash: bool = typer.Option(False, "--no-hash", help="Check that image files exist with their size; skip sha256."),
    threads: int | None = typer.Option(None, "--threads", help="Threads that check files (default: 2 per CPU, ≤ 16)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the store: every batch's trajectory and sample rows, every image file's size and sha256,
    rows and files of runs that do not exist, the columnar copy. Exit code 1 if anything is wrong."""
    from advdb.analytics.columnar import SCHEMA_VERSION, columnar_path
    from advdb.store.integrity import ColumnarCopy, check_store

    with _existing_store() as store:
        copy = ColumnarCopy(path=columnar_path(store.location), schema_version=SCHEMA_VERSION)
        bar = _FileBar()
        try:
            report = check_store(
                store, run_id=run_id, hash_files=not no_hash, columnar=copy, threads=threads, progress=bar
            )
        finally:
            bar.close()
        where, root = store.location.masked, store.location.artifacts_dir
    if as_json:
        checked = {k: v for k, v in asdict(report).items() if k not in ("problems", "notes")}
        render.print_json(
            {
                "store": where,
                "artifact_root": str(root),
                "ok": report.ok,
                "problems": [asdict(p) for p in report.problems],
                "checked": checked,
                "notes": list(report.notes),
            }
        )
    else:
        _print_check(report, where, root)
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def _print_gc(report: GcReport) -> None:
    total = f"{len(report.files):,} file{'' if len(report.files) == 1 else 's'} ({_size(report.n_bytes)})"
    if report.files and not report.deleted:
        rows = [(f.path, f.run_id, _size(f.n_bytes), f.reason) for f in report.files[: render.MAX_TABLE_ROWS]]
        render.print_table(["path", "run", "size", "reason"], rows, humanize=False, wrap=["reason"])
        if len(report.files) > render.MAX_TABLE_ROWS:
            render.err_console.print(f"({len(report.files) - render.MAX_TABLE_ROWS} more files: use --json)")
    for run_id in report.live_runs:
        render.err_console.print(f"note: run {run_id} is live: its folder was left alone")
    if report.deleted:
        render.console.print(f"deleted {total} from {report.root}; removed {report.removed_dirs} empty folders")
    elif report.files:
        render.console.print(f"{total} under {report.root} that no row references: `advdb db gc --delete` removes them")
    else:
        render.console.print(f"no stray files under {report.root}")


@command(app, "gc")
def db_gc(
    delete: bool = typer.Option(False, "--delete", help="Delete the files (and the empty folders they leave)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the image files under the artifact root that no artifact row references (left by
    `advdb runs delete`, batches attacked twice, crashed writers); --delete removes them."""
    from advdb.store.integrity import collect_garbage

    with _existing_store() as store:
        report = collect_garbage(store, delete=delete)
    if as_json:
        render.print_json(
            {
                "artifact_root": str(report.root),
                "deleted": report.deleted,
                "files": [asdict(f) for f in report.files],
                "n_bytes": report.n_bytes,
                "removed_dirs": report.removed_dirs,
                "live_runs": list(report.live_runs),
            }
        )
    else:
        _print_gc(report)
