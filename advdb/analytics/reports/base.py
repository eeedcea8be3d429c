"""What every report shares: the context it reads, the output it returns, the registry it is
listed in, and the small queries several reports make (no matplotlib here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from advdb.analytics import statistics
from advdb.analytics.query import QuerySession
from advdb.analytics.selection import RunSelection
from advdb.analytics.sqlfiles import sql_text

MODE_LABELS = {"equal-multiplier": "equal multiplier", "equal-perturbation": "equal perturbation"}


@dataclass
class Context:
    """What a report needs: the DuckDB session, the run selection and options; ``draw``: whether
    figures are drawn (:func:`advdb.analytics.reports.report_data` asks for the data alone)."""

    session: QuerySession
    selection: RunSelection
    confidence: float = 0.9
    examples: int = 4
    draw: bool = True

    def query(self, name: str, **params: Any) -> pa.Table:
        return self.session.query(sql_text(name), params or None)


@dataclass
class ReportOutput:
    """A report's data, the table to show (columns, rows) and the figure to draw."""

    data: dict[str, pa.Table]
    display: tuple[list[str], list[list[str]]] | None = None
    figure: Any = None  # a matplotlib Figure
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    kind: str  # "table" or "figure"
    build: Callable[[Context], ReportOutput]


REPORTS: dict[str, Report] = {}


def report(
    name: str, title: str, kind: str
) -> Callable[[Callable[[Context], ReportOutput]], Callable[[Context], ReportOutput]]:
    """Register a report under ``name`` (listed in the order :mod:`advdb.analytics.reports` gives)."""

    def deco(fn: Callable[[Context], ReportOutput]) -> Callable[[Context], ReportOutput]:
        REPORTS[name] = Report(name, title, kind, fn)
        return fn

    return deco


def mode_label(mode: str) -> str:
    return MODE_LABELS.get(mode, mode)


def by_run(table: pa.Table) -> dict[int, dict[str, np.ndarray]]:
    """A table's columns split per ``run_id``."""
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    out: dict[int, dict[str, np.ndarray]] = {}
    for run_id in np.unique(cols["run_id"]):
        m = cols["run_id"] == run_id
        out[int(run_id)] = {c: v[m] for c, v in cols.items()}
    return out


def missing_notes(sel: RunSelection, mode: str) -> list[str]:
    return [f"missing: {cmd}" for cmd in sel.missing(mode)]


def source_runs(ctx: Context, what: str) -> list[int]:
    """The selection's run ids; a MissingDataError naming the commands when there are none."""
    ids = ctx.selection.ids()
    if not ids:
        ctx.selection.require("equal-perturbation", what)
    return ids


def margin_of(ctx: Context, ids: list[int]) -> dict[int, float]:
    """Each unified source run's mean margin at the last iteration (margins.sql)."""
    return {r["run_id"]: r["margin_mean"] for r in ctx.query("margins", runs=ids).to_pylist()}


def rate(n: int, k: int) -> str:
    """``k`` of ``n`` as a share with its 95 % Wilson interval."""
    e = statistics.proportion(k / n, n)
    return f"{e.value:.0%} [{e.lo:.0%}, {e.hi:.0%}]"
