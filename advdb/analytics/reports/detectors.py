"""Tables II and III: detector accuracy per source (or full attack) and detector architecture.

Rows are the paper's sources, then its full attacks, in its order, then any other source or
attack in the store by its own name (:func:`advdb.analytics.selection.order_names`).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

import pyarrow as pa

from advdb.analytics import statistics
from advdb.analytics.reports.base import Context, ReportOutput, report
from advdb.analytics.selection import SOURCE_LABELS, MissingDataError, order_names
from advdb.vocabulary import FULL_ATTACKS, SOURCES

ARCH_ORDER = ["alexnet", "resnet18", "vgg16", "resnet34", "resnet152"]


GROUP_NAMES = {
    **SOURCE_LABELS,
    "adversarial": "Adversarial examples",
    "genuine": "Genuine images",
    "overall": "Overall accuracy",
}


SWEEP_NOTE = (
    "· setting: the optimiser and learning rate whose run scored best of the settings tried (advdb retrain "
    "--sweep); the choice is made on the held-out images it is scored on, so it is slightly optimistic"
)
AT_CHANCE_NOTE = (
    "at chance: the detector's overall held-out accuracy does not beat always answering its test set's "
    "majority class (95% Wilson interval) — it learned nothing to report; retrain it"
)


def at_chance(ctx: Context, rows: list[dict]) -> set[int]:
    """Detector runs whose overall held-out accuracy does not beat their majority class."""
    chance = {r["run_id"]: r["chance"] for r in ctx.query("detector_chance").to_pylist()}
    return {
        r["run_id"]
        for r in rows
        if r.get("group", "overall") == "overall"
        and r["run_id"] in chance
        and statistics.proportion(r["accuracy"], r["n_images"]).lo <= chance[r["run_id"]]
    }


def _detector_notes(rows: list[dict], chance: AbstractSet[int]) -> list[str]:
    return [SWEEP_NOTE] * any(r["settings"] > 1 for r in rows) + [AT_CHANCE_NOTE] * bool(chance)


def accuracy_pivot(
    rows: list[dict], row_key: str, tail: tuple[str, ...] = (), chance: AbstractSet[int] = frozenset()
) -> tuple[list[str], list[list[str]]]:
    """Rows (source, attack or group: :func:`order_names`, then ``tail``) × detector architectures,
    accuracy in each cell; a detector run in ``chance`` shows as "at chance" instead of a result."""
    archs = {r["arch"] for r in rows}
    columns = [a for a in ARCH_ORDER if a in archs] + sorted(archs - set(ARCH_ORDER))
    cells = {(r[row_key], r["arch"]): r for r in rows}
    present = {k[0] for k in cells}
    order = order_names(present.difference(tail), (*SOURCES, *FULL_ATTACKS)) + [g for g in tail if g in present]

    def cell(r: dict | None) -> str:
        if r is None:
            return "–"
        text = f"at chance ({r['accuracy']:.1%})" if r["run_id"] in chance else f"{r['accuracy']:.1%}"
        return f"{text} · {r['setting']}" if r["settings"] > 1 else text

    table = [[GROUP_NAMES.get(g, g)] + [cell(cells.get((g, a))) for a in columns] for g in order]
    return ["Attack", *columns], table


def detector_rows(ctx: Context, name: str) -> pa.Table:
    """Table II's or III's rows for the classifier whose runs the selection compares (a store may
    hold detectors of several, such as the mnist study's two LeNets)."""
    data = ctx.query(name)
    if ctx.selection.classifier is None:
        return data
    keep = [c == ctx.selection.classifier for c in data.column("classifier").to_pylist()]
    return data.filter(pa.array(keep, type=pa.bool_()))


def table2_data(ctx: Context) -> dict[str, pa.Table]:
    data = detector_rows(ctx, "table2")
    if not data.num_rows:
        raise MissingDataError(
            "table2 needs single-source detector runs: run `advdb retrain --arch ARCH --sources RUN` for each source"
        )
    return {"table2": data}


@report("table2", "Table II: detector accuracy, genuine vs one source's adversarial images", "table")
def table2(ctx: Context) -> ReportOutput:
    data = table2_data(ctx)
    rows = data["table2"].to_pylist()
    chance = at_chance(ctx, rows)
    pivot = accuracy_pivot(rows, "source", chance=chance)
    return ReportOutput(data, pivot, notes=_detector_notes(rows, chance))


def table3_data(ctx: Context) -> dict[str, pa.Table]:
    data = detector_rows(ctx, "table3")
    if not data.num_rows:
        raise MissingDataError(
            "table3 needs an all-sources detector run: run `advdb retrain --arch ARCH --sources RUN,RUN,…`"
        )
    return {"table3": data}


@report("table3", "Table III: detector accuracy when trained on every source at once", "table")
def table3(ctx: Context) -> ReportOutput:
    data = table3_data(ctx)
    rows = data["table3"].to_pylist()
    chance = at_chance(ctx, rows)
    pivot = accuracy_pivot(rows, "group", ("adversarial", "genuine", "overall"), chance=chance)
    return ReportOutput(data, pivot, notes=_detector_notes(rows, chance))
