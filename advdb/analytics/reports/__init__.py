"""The paper's tables (I–III) and figures (1–6), and the reports beyond it, from DuckDB queries.

Each report runs the ``.sql`` files in ``advdb/analytics/sql`` over the store. Its module keeps
the report's data (``*_data``: the queries, no matplotlib) apart from its table or figure:

* :mod:`~advdb.analytics.reports.paper`: Table I, subspaces, margins, Figs. 1–4;
* :mod:`~advdb.analytics.reports.examples`: Fig. 5 (the stored image files);
* :mod:`~advdb.analytics.reports.detectors`: Tables II and III;
* :mod:`~advdb.analytics.reports.circles`: Fig. 6;
* :mod:`~advdb.analytics.reports.transfer`, :mod:`~advdb.analytics.reports.defenses`;
* :mod:`~advdb.analytics.reports.budgets`: curves and robustness (:mod:`advdb.analytics.curves`);
* :mod:`~advdb.analytics.reports.base` (context, output, registry), ``plotting`` (matplotlib, colours).

Sources, attacks and transforms appear by their own names: the paper's first, in its order,
then any other in the store (:func:`advdb.analytics.selection.order_names`).

This module is the registry's front: :func:`build` one report over an open session,
:func:`report_data` for notebooks (Arrow tables; no figure is drawn), :func:`write_report`
(tables as Markdown, CSV and LaTeX, figures as PNG and PDF).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from advdb.analytics.query import QuerySession
from advdb.analytics.reports import budgets, circles, defenses, detectors, examples, paper, transfer
from advdb.analytics.reports.base import REPORTS, Context, Report, ReportOutput, report
from advdb.analytics.reports.detectors import at_chance, detector_rows
from advdb.analytics.reports.plotting import close
from advdb.analytics.reports.transfer import transfer_figure
from advdb.analytics.selection import RunSelection, select_runs
from advdb.analytics.tables import write_table
from advdb.errors import ConfigError
from advdb.store.location import StoreLocation

#: The order ``advdb report all``, its errors and the web view list the reports in.
ORDER = (
    "table1",
    "subspaces",
    "fig1",
    "fig2",
    "fig3",
    "fig4",
    "fig5",
    "table2",
    "table3",
    "fig6",
    "margins",
    "transfer",
    "defenses",
    "curves",
    "robustness",
)
for _name in (*ORDER, *(n for n in list(REPORTS) if n not in ORDER)):
    REPORTS[_name] = REPORTS.pop(_name)


__all__ = [
    "ORDER",
    "REPORTS",
    "Context",
    "Report",
    "ReportOutput",
    "at_chance",
    "budgets",
    "build",
    "circles",
    "default_out_dir",
    "defenses",
    "detector_rows",
    "detectors",
    "examples",
    "execution_note",
    "get_report",
    "paper",
    "report",
    "report_data",
    "transfer",
    "transfer_figure",
    "write_report",
]


def get_report(name: str) -> Report:
    if name not in REPORTS:
        raise ConfigError(f"unknown report {name!r}: choose one of {', '.join(REPORTS)} or all")
    return REPORTS[name]


def build(
    session: QuerySession,
    name: str,
    *,
    runs: list[int] | None = None,
    model: str | None = None,
    confidence: float = 0.9,
    examples: int = 4,
    draw: bool = True,
) -> ReportOutput:
    """Build one report's data (and, with ``draw``, its figure) over an open session; ``model``
    picks the newest runs on that classifier when the store attacked several."""
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence must lie between 0 and 1, got {confidence}")
    if not 1 <= examples <= 64:
        raise ConfigError(f"--examples must be between 1 and 64, got {examples}")
    rep = get_report(name)
    selection = select_runs(session, runs, model=model)
    output = rep.build(Context(session, selection, confidence, examples, draw))
    note = execution_note(selection)
    if note:
        output.notes.append(note)
    return output


def execution_note(selection: RunSelection) -> str | None:
    """A note when the selected runs computed with different precision, compile or layout settings."""
    runs = sorted(selection.info.items())
    layouts = len({info["memory_format"] for _, info in runs}) > 1
    settings = {
        r: " ".join([info["precision"]] + ["compiled"] * bool(info["compiled"]) + [info["memory_format"]] * layouts)
        for r, info in runs
    }
    if len(set(settings.values())) <= 1:
        return None
    listed = ", ".join(f"run {r} {s}" for r, s in settings.items())
    return (
        f"these runs computed differently ({listed}): their findings are comparable (tests/test_execution.py checks "
        "that success rates and the ordering of the sources do not depend on it), single trajectories are not"
    )


def report_data(
    name: str, *, db: str | None = None, runs: list[int] | None = None, confidence: float = 0.9
) -> dict[str, pa.Table]:
    """A report's data as Arrow tables (``.to_pandas()`` for DataFrames), for notebooks; no figure
    is drawn (curves and robustness draw theirs with their data, and it is closed)."""
    from advdb.analytics.query import checked_location

    with QuerySession(checked_location(db)) as session:
        out = build(session, name, runs=runs, confidence=confidence, draw=False)
    close(out.figure)
    return out.data


def write_report(out: ReportOutput, name: str, out_dir: Path) -> list[Path]:
    """Write a built report: tables as .md/.csv/.tex, figures as .png/.pdf."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the report folder {out_dir}: {exc.strerror or exc}: give another --out"
        ) from None
    files: list[Path] = []
    if out.display is not None:
        cols, rows = out.display
        files += write_table(out_dir, name, cols, rows, REPORTS[name].title)
    if out.figure is not None:
        for ext in ("png", "pdf"):
            path = out_dir / f"{name}.{ext}"
            out.figure.savefig(path, bbox_inches="tight")
            files.append(path)
        close(out.figure)
    return files


def default_out_dir(location: StoreLocation) -> Path:
    """``reports/`` beside a SQLite store, else in the working directory."""
    if location.sqlite_path is not None:
        return location.sqlite_path.parent / "reports"
    return Path.cwd() / "reports"
