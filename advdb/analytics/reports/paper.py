"""The paper's Table I, the subspaces S1/S2/S3, the margins and Figs. 1–4: each report's data
(``*_data``, DuckDB only) apart from its table (``*_table``) or figure (``*_figure``).

Sources are listed by :func:`advdb.analytics.selection.order_names`: the paper's four in its
order, then any other source in the store by its own name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from advdb.analytics.reports.base import (
    Context,
    ReportOutput,
    by_run,
    missing_notes,
    mode_label,
    report,
    source_runs,
)
from advdb.analytics.reports.plotting import COLORS, color_of, pyplot
from advdb.analytics.selection import MissingDataError, RunSelection, order_names, source_label
from advdb.analytics.tables import fmt
from advdb.vocabulary import MODES, SOURCES

Display = tuple[list[str], list[list[str]]]


def _per_source_rows(data: pa.Table) -> tuple[list[str], dict[tuple[str, str], dict[str, Any]]]:
    """The rows of a per source × mode table, and the sources to list: the paper's four (shown
    even without a run) and any other in the data."""
    rows = {(r["loss"], r["mode"]): r for r in data.to_pylist()}
    return order_names({*SOURCES, *(loss for loss, _ in rows)}, SOURCES), rows


def _sorted_by_source(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {loss: i for i, loss in enumerate(order_names((r["loss"] for r in rows), SOURCES))}
    return sorted(rows, key=lambda r: (r["mode"], order[r["loss"]]))


# --- Table I ---------------------------------------------------------------------------------


def table1_data(ctx: Context) -> dict[str, pa.Table]:
    return {"table1": ctx.query("table1", runs=source_runs(ctx, "table1"))}


def table1_table(data: pa.Table) -> Display:
    losses, rows = _per_source_rows(data)
    cols = ["Source"] + [
        f"{mode_label(m).capitalize()}: {h}" for m in MODES for h in ("iterations", "time (s)", "reached")
    ]
    out_rows = []
    for loss in losses:
        line = [source_label(loss)]
        for mode in MODES:
            r = rows.get((loss, mode))
            if r is None:
                line += ["–", "–", "–"]
                continue
            line += [
                f"{fmt(r['iterations_mean'], 1)} ± {fmt(r['iterations_std'], 1)} "
                f"[{fmt(r['iterations_ci_lo'], 1)}, {fmt(r['iterations_ci_hi'], 1)}]",
                fmt(r["attack_seconds"], 1),
                f"{r['success_rate']:.0%}",
            ]
        out_rows.append(line)
    return cols, out_rows


@report("table1", "Table I: iterations to reach the target and attack time, per source and mode", "table")
def table1(ctx: Context) -> ReportOutput:
    data = table1_data(ctx)
    notes = [n for m in MODES for n in missing_notes(ctx.selection, m)]
    notes.append("iterations: mean ± standard deviation [95% confidence interval of the mean]")
    return ReportOutput(data, table1_table(data["table1"]), notes=notes)


# --- subspaces ---------------------------------------------------------------------------------


def subspaces_data(ctx: Context) -> dict[str, pa.Table]:
    return {"subspaces": ctx.query("subspaces", runs=source_runs(ctx, "subspaces"), h=ctx.confidence)}


def subspaces_table(data: pa.Table) -> Display:
    cols = ["Source", "Mode", "S1 share", "S2 share", "S3 share"]
    cols += ["S1 iters before", "S2 iters before", "S3 iters before"]
    rows = [
        [
            source_label(r["loss"]),
            mode_label(r["mode"]),
            f"{r['share_s1']:.1%}",
            f"{r['share_s2']:.1%}",
            f"{r['share_s3']:.1%}",
            fmt(r["iters_s1_before_success"], 1),
            fmt(r["iters_s2_before_success"], 1),
            fmt(r["iters_s3_before_success"], 1),
        ]
        for r in _sorted_by_source(data.to_pylist())
    ]
    return cols, rows


@report(
    "subspaces",
    "Subspaces S1/S2/S3 (Definition IV.1): share of image-iterations and iterations before success",
    "table",
)
def subspaces(ctx: Context) -> ReportOutput:
    data = subspaces_data(ctx)
    notes = [f"confidence threshold h = {ctx.confidence}"]
    return ReportOutput(data, subspaces_table(data["subspaces"]), notes=notes)


# --- Margins (beyond the paper) ----------------------------------------------------------------


def margins_data(ctx: Context) -> dict[str, pa.Table]:
    return {"margins": ctx.query("margins", runs=source_runs(ctx, "margins"))}


def margins_table(data: pa.Table) -> Display:
    losses, rows = _per_source_rows(data)
    cols = ["Source"] + [f"{mode_label(m).capitalize()}: {h}" for m in MODES for h in ("margin", "on target")]
    table = []
    for loss in losses:
        line = [source_label(loss)]
        for mode in MODES:
            r = rows.get((loss, mode))
            line += (
                ["–", "–"]
                if r is None
                else [
                    f"{fmt(r['margin_mean'], 2)} [{fmt(r['margin_ci_lo'], 2)}, {fmt(r['margin_ci_hi'], 2)}]",
                    f"{r['target_at_end']:.0%}",
                ]
            )
        table.append(line)
    return cols, table


@report("margins", "Margins: the target's logit lead over every other class at the last iteration, per source", "table")
def margins(ctx: Context) -> ReportOutput:
    data = margins_data(ctx)
    notes = [
        "margin: z_t − max(z_y, strongest other logit) at iteration T, mean [95% confidence interval]; "
        "on target: share of images that are the target at T; margins.sql also gives the median and 10th percentile"
    ]
    return ReportOutput(data, margins_table(data["margins"]), notes=notes)


# --- Fig. 1 ------------------------------------------------------------------------------------


def _fig1_run(sel: RunSelection) -> int:
    for key in (("ce-sign", "equal-multiplier"), ("ce-sign", "equal-perturbation")):
        if key in sel.runs:
            return sel.runs[key]
    raise MissingDataError(f"fig1 needs an IFGS (ce-sign) run: run {sel.hint('ce-sign', 'equal-multiplier')}")


def fig1_data(ctx: Context) -> tuple[int, dict[str, pa.Table]]:
    """The CE-sign run Fig. 1 shows and its mean trajectory and subspace shares."""
    run_id = _fig1_run(ctx.selection)
    means = ctx.query("trajectory_means", runs=[run_id])
    shares = ctx.query("subspace_shares", runs=[run_id], h=ctx.confidence)
    return run_id, {"trajectory_means": means, "subspace_shares": shares}


def fig1_figure(ctx: Context, run_id: int, data: dict[str, pa.Table]) -> Any:
    m, s = by_run(data["trajectory_means"])[run_id], by_run(data["subspace_shares"])[run_id]
    h = ctx.confidence
    plt = pyplot()
    fig, (a, b) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    a.plot(m["iteration"], m["p_init"], color="#444444", label="initial class $s_y$")
    a.plot(m["iteration"], m["p_target"], color=COLORS["ce-sign"], label="target class $s_t$")
    a.axhline(h, color="k", ls=":", lw=0.8)
    a.set_ylabel("mean softmax probability")
    a.set_ylim(-0.02, 1.02)
    a.legend(loc="center right")
    a.set_title(f"(a) CE-sign, {mode_label(ctx.selection.info[run_id]['mode'])} (run {run_id})", fontsize=9)
    b.stackplot(
        s["iteration"],
        s["s1"],
        s["s2"],
        s["s3"],
        colors=["#c6dbef", "#fdd0a2", "#c7e9c0"],
        labels=[f"S1 (other class ≥ {h})", "S2 (no class ≥ h)", f"S3 (target ≥ {h})"],
    )
    b.set_ylabel("share of images")
    b.set_xlabel("iteration")
    b.set_ylim(0, 1)
    b.legend(loc="center right", fontsize=7)
    b.set_title("(b) subspace of each image", fontsize=9)
    fig.tight_layout()
    return fig


@report(
    "fig1",
    "Fig. 1: mean softmax of the initial and target class per iteration (IFGS / CE-sign), with S1/S2/S3",
    "figure",
)
def fig1(ctx: Context) -> ReportOutput:
    run_id, data = fig1_data(ctx)
    return ReportOutput(data, figure=fig1_figure(ctx, run_id, data) if ctx.draw else None)


# --- Figs. 2 and 3 -----------------------------------------------------------------------------


def fig_mode_data(ctx: Context, mode: str, name: str) -> tuple[dict[str, int], dict[str, pa.Table]]:
    """One mode's runs (source → run id) with their mean trajectories and perturbation at success."""
    runs = ctx.selection.require(mode, name)
    means = ctx.query("trajectory_means", runs=list(runs.values()))
    pert = ctx.query("success_perturbation", runs=list(runs.values()))
    return runs, {"trajectory_means": means, "success_perturbation": pert}


def _mean_curves(a: Any, b: Any, runs: dict[str, int], m: dict[int, dict[str, np.ndarray]]) -> None:
    for loss, run_id in runs.items():
        d = m.get(run_id)
        if d is None:
            continue
        c, name = color_of(loss), source_label(loss)
        a.plot(d["iteration"], d["p_target"], color=c, label=f"{name} $s_t$")
        a.plot(d["iteration"], d["p_init"], color=c, ls="--", lw=1, label=f"{name} $s_y$")
        b.plot(d["iteration"], d["z_target"], color=c, label=f"{name} $z_t$")
        b.plot(d["iteration"], d["z_init"], color=c, ls="--", lw=1, label=f"{name} $z_y$")
    a.set(
        xlabel="iteration", ylabel="mean softmax probability", title="(a) softmax of initial (--) and target (—) class"
    )
    b.set(xlabel="iteration", ylabel="mean logit", title="(b) logit of initial (--) and target (—) class")
    a.legend(ncol=2, fontsize=7)
    b.legend(ncol=2, fontsize=7)


def _success_boxes(axes: tuple[Any, Any], runs: dict[str, int], p: dict[int, dict[str, np.ndarray]]) -> None:
    labels = [source_label(loss) for loss in runs]
    for ax, col, norm in ((axes[0], "success_l1", "L1"), (axes[1], "success_l2", "L2")):
        values = [p.get(r, {}).get(col, np.array([])) for r in runs.values()]
        bp = ax.boxplot(
            [v if len(v) else [np.nan] for v in values],
            tick_labels=labels,
            patch_artist=True,
            showfliers=True,
            flierprops={"markersize": 2},
        )
        for patch, loss in zip(bp["boxes"], runs, strict=True):
            patch.set_facecolor(color_of(loss))
            patch.set_alpha(0.5)
        ax.set(ylabel=f"{norm} of $x' - x$", title=f"(c) {norm} perturbation at the first iteration classified as $t$")


def fig_mode_figure(ctx: Context, mode: str, runs: dict[str, int], data: dict[str, pa.Table]) -> Any:
    """Figs. 2/3: mean softmax and logits per iteration, and the perturbation at success, per source."""
    pert = data["success_perturbation"]
    m, p = by_run(data["trajectory_means"]), by_run(pert) if pert.num_rows else {}
    plt = pyplot()
    fig = plt.figure(figsize=(10, 6.6))
    gs = fig.add_gridspec(2, 4)
    _mean_curves(fig.add_subplot(gs[0, :2]), fig.add_subplot(gs[0, 2:]), runs, m)
    _success_boxes((fig.add_subplot(gs[1, :2]), fig.add_subplot(gs[1, 2:])), runs, p)
    sel = ctx.selection
    fig.suptitle(f"{mode_label(mode).capitalize()} — {sel.classifier} on {sel.dataset}", fontsize=10)
    fig.tight_layout()
    return fig


def _fig_mode(ctx: Context, mode: str, name: str) -> ReportOutput:
    runs, data = fig_mode_data(ctx, mode, name)
    figure = fig_mode_figure(ctx, mode, runs, data) if ctx.draw else None
    return ReportOutput(data, figure=figure, notes=missing_notes(ctx.selection, mode))


@report("fig2", "Fig. 2: equal multiplier — softmax, logits and perturbation at success, per source", "figure")
def fig2(ctx: Context) -> ReportOutput:
    return _fig_mode(ctx, "equal-multiplier", "fig2")


@report("fig3", "Fig. 3: equal perturbation — softmax, logits and perturbation at success, per source", "figure")
def fig3(ctx: Context) -> ReportOutput:
    return _fig_mode(ctx, "equal-perturbation", "fig3")


# --- Fig. 4 ------------------------------------------------------------------------------------


def fig4_data(ctx: Context) -> tuple[dict[str, int], dict[str, pa.Table]]:
    runs = ctx.selection.require("equal-multiplier", "fig4")
    return runs, {"trajectory_means": ctx.query("trajectory_means", runs=list(runs.values()))}


def fig4_figure(runs: dict[str, int], data: dict[str, pa.Table]) -> Any:
    """The size of the added perturbation and of the gradient per iteration, per source."""
    m = by_run(data["trajectory_means"])
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for loss, run_id in runs.items():
        d = m.get(run_id)
        if d is None:
            continue
        c, name = color_of(loss), source_label(loss)
        last = d["iteration"] < d["iteration"].max()  # the last row has no step
        # exact zeros (m-logit with κ = 0 after success) cannot sit on a log axis: the line ends there
        a.plot(d["iteration"][last], np.where(d["step_l2"][last] > 0, d["step_l2"][last], np.nan), color=c, label=name)
        b.plot(d["iteration"], np.where(d["grad_l2"] > 0, d["grad_l2"], np.nan), color=c, label=name)
    a.set(
        yscale="log",
        xlabel="iteration",
        ylabel=r"mean $\|x_{n+1} - x_n\|_2$",
        title="(a) perturbation added per iteration",
    )
    b.set(
        yscale="log",
        xlabel="iteration",
        ylabel=r"mean $\|\nabla_x \mathrm{loss}\|_2$",
        title="(b) gradient of the source's loss",
    )
    a.legend()
    b.legend()
    fig.tight_layout()
    return fig


@report("fig4", "Fig. 4: equal multiplier — size of the added perturbation and of the gradient per iteration", "figure")
def fig4(ctx: Context) -> ReportOutput:
    runs, data = fig4_data(ctx)
    figure = fig4_figure(runs, data) if ctx.draw else None
    return ReportOutput(data, figure=figure, notes=missing_notes(ctx.selection, "equal-multiplier"))
