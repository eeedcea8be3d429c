"""Transfer (beyond the paper): the share of each source's adversarial images another classifier
also classifies as the target (targeted) or not as the true class (untargeted)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from advdb.analytics import statistics
from advdb.analytics.reports.base import Context, ReportOutput, margin_of, mode_label, rate, report, source_runs
from advdb.analytics.reports.plotting import pyplot
from advdb.analytics.selection import MissingDataError, RunSelection, source_label
from advdb.analytics.tables import fmt
from advdb.vocabulary import MODES

NOTE = (
    "share of the images still adversarial on the attacked model (its stored files) that the other model "
    "classifies as the target (targeted) or not as the true class (untargeted) [95% Wilson interval]; "
    "margin at T: the source's mean z_t − max other logit at the last iteration (report margins)"
)


def transfer_data(ctx: Context) -> dict[str, pa.Table]:
    ids = source_runs(ctx, "transfer")
    data = ctx.query("transfer", runs=ids)
    if not data.num_rows:
        raise MissingDataError(
            "transfer needs transfer runs of the selected attack runs: run `advdb transfer --sources "
            f"{','.join(map(str, ids))} --model digits-cnn-seed1` (or another classifier)"
        )
    return {"transfer": data}


def transfer_table(
    rows: list[dict[str, Any]], models: list[str], sel: RunSelection, margin: dict[int, float]
) -> tuple[list[str], list[list[str]]]:
    """Per mode and source (the selection's order) its margin at T and its transfer onto each model."""
    cells = {(r["mode"], r["loss"], r["model"]): r for r in rows}
    cols = ["Mode", "Source", "margin at T"] + [f"{m}: {k}" for m in models for k in ("targeted", "untargeted")]
    table = []
    for mode in MODES:
        for loss, run_id in sel.by_mode(mode).items():
            line = [mode_label(mode), source_label(loss), fmt(margin.get(run_id), 2)]
            for model in models:
                r = cells.get((mode, loss, model))
                line += (
                    ["–", "–"]
                    if r is None
                    else [rate(r["images"], r["targeted_n"]), rate(r["images"], r["untargeted_n"])]
                )
            table.append(line)
    return cols, table


def transfer_figure(rows: list[dict[str, Any]], models: list[str], sel: RunSelection) -> Any:
    """Per mode, each source's targeted transfer onto each other model (bars, Wilson intervals)
    and its untargeted transfer (dots)."""
    modes = [m for m in MODES if sel.by_mode(m)]
    cells = {(r["mode"], r["loss"], r["model"]): r for r in rows}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(modes), figsize=(4.5 * len(modes), 3.2), squeeze=False)
    width = 0.8 / max(len(models), 1)
    for ax, mode in zip(axes[0], modes, strict=True):
        losses = list(sel.by_mode(mode))
        for j, model in enumerate(models):
            xs, ys, lo, hi, un = [], [], [], [], []
            for i, loss in enumerate(losses):
                r = cells.get((mode, loss, model))
                if r is None:
                    continue
                e = statistics.proportion(r["targeted_n"] / r["images"], r["images"])
                xs.append(i + (j - (len(models) - 1) / 2) * width)
                ys.append(e.value)
                lo.append(max(e.value - e.lo, 0.0))  # a Wilson bound at 0 or 1 can miss the value by rounding
                hi.append(max(e.hi - e.value, 0.0))
                un.append(r["untargeted"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=f"{model}: targeted")
            ax.plot(xs, un, "k.", label="untargeted" if j == 0 else None)
        ax.set_xticks(range(len(losses)), [source_label(loss) for loss in losses])
        ax.set(title=f"transfer · {mode_label(mode)}", ylabel="share of adversarial images", ylim=(0, 1.05))
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(models) + 1, fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


@report(
    "transfer",
    "Transfer: share of each source's adversarial images another classifier also classifies as the target "
    "(targeted) or not as the true class (untargeted)",
    "figure",
)
def transfer(ctx: Context) -> ReportOutput:
    data = transfer_data(ctx)
    rows = data["transfer"].to_pylist()
    models = list(dict.fromkeys(r["model"] for r in rows))
    display = transfer_table(rows, models, ctx.selection, margin_of(ctx, ctx.selection.ids()))
    resized = {r["model"]: json.loads(r["resized"]) for r in rows if r.get("resized")}
    notes = [NOTE] + [
        f"{m} was trained at {to} px: the {frm} px images were resized to {to} px on the way in (bilinear, antialiased)"
        for m, (frm, to) in resized.items()
    ]
    figure = transfer_figure(rows, models, ctx.selection) if ctx.draw else None
    return ReportOutput(data, display, figure, notes=notes)
