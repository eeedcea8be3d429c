"""The paper's tables (I–III) and figures (1–6), from DuckDB queries.

Each report runs the ``.sql`` files in ``advdb/analytics/sql`` over the store and returns its
data as Arrow tables (:func:`report_data`, for notebooks) or writes it (:func:`write_report`):
tables as Markdown, CSV and LaTeX (booktabs), figures as PNG and PDF.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from advdb.analytics import statistics
from advdb.analytics.query import QuerySession
from advdb.analytics.selection import MissingDataError, RunSelection, select_runs
from advdb.analytics.sqlfiles import sql_text
from advdb.analytics.tables import fmt, write_table
from advdb.errors import ConfigError, NotFoundError
from advdb.store.location import StoreLocation
from advdb.vocabulary import FULL_ATTACKS, MODES, SOURCES, TRANSFORMS

COLORS = {"ce": "#1f77b4", "ce-sign": "#ff7f0e", "logit": "#2ca02c", "m-logit": "#d62728"}
LABELS = {"ce": "CE", "ce-sign": "CE-sign", "logit": "Logit", "m-logit": "M-logit"}
MODE_LABELS = {"equal-multiplier": "equal multiplier", "equal-perturbation": "equal perturbation"}


@dataclass
class Context:
    """What a report needs: the DuckDB session, the run selection and options."""

    session: QuerySession
    selection: RunSelection
    confidence: float = 0.9
    examples: int = 4

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
    def deco(fn: Callable[[Context], ReportOutput]) -> Callable[[Context], ReportOutput]:
        REPORTS[name] = Report(name, title, kind, fn)
        return fn

    return deco


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8, "figure.dpi": 150})
    return plt


def _by_run(table: pa.Table) -> dict[int, dict[str, np.ndarray]]:
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    out: dict[int, dict[str, np.ndarray]] = {}
    for run_id in np.unique(cols["run_id"]):
        m = cols["run_id"] == run_id
        out[int(run_id)] = {c: v[m] for c, v in cols.items()}
    return out


def _missing_notes(sel: RunSelection, mode: str) -> list[str]:
    return [f"missing: {cmd}" for cmd in sel.missing(mode)]


# --- Table I ---------------------------------------------------------------------------------


@report("table1", "Table I: iterations to reach the target and attack time, per source and mode", "table")
def table1(ctx: Context) -> ReportOutput:
    ids = ctx.selection.ids()
    if not ids:
        ctx.selection.require("equal-perturbation", "table1")
    data = ctx.query("table1", runs=ids)
    rows = {(r["loss"], r["mode"]): r for r in data.to_pylist()}
    cols = ["Source"] + [
        f"{MODE_LABELS[m].capitalize()}: {h}" for m in MODES for h in ("iterations", "time (s)", "reached")
    ]
    out_rows = []
    for loss in SOURCES:
        line = [LABELS[loss]]
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
    notes = [n for m in MODES for n in _missing_notes(ctx.selection, m)]
    notes.append("iterations: mean ± standard deviation [95% confidence interval of the mean]")
    return ReportOutput({"table1": data}, (cols, out_rows), notes=notes)


# --- subspaces ---------------------------------------------------------------------------------


@report(
    "subspaces",
    "Subspaces S1/S2/S3 (Definition IV.1): share of image-iterations and iterations before success",
    "table",
)
def subspaces(ctx: Context) -> ReportOutput:
    ids = ctx.selection.ids()
    if not ids:
        ctx.selection.require("equal-perturbation", "subspaces")
    data = ctx.query("subspaces", runs=ids, h=ctx.confidence)
    cols = [
        "Source",
        "Mode",
        "S1 share",
        "S2 share",
        "S3 share",
        "S1 iters before",
        "S2 iters before",
        "S3 iters before",
    ]
    rows = [
        [
            LABELS.get(r["loss"], r["loss"]),
            MODE_LABELS.get(r["mode"], r["mode"]),
            f"{r['share_s1']:.1%}",
            f"{r['share_s2']:.1%}",
            f"{r['share_s3']:.1%}",
            fmt(r["iters_s1_before_success"], 1),
            fmt(r["iters_s2_before_success"], 1),
            fmt(r["iters_s3_before_success"], 1),
        ]
        for r in data.to_pylist()
    ]
    return ReportOutput({"subspaces": data}, (cols, rows), notes=[f"confidence threshold h = {ctx.confidence}"])


# --- Fig. 1 ------------------------------------------------------------------------------------


def _fig1_run(sel: RunSelection) -> int:
    for key in (("ce-sign", "equal-multiplier"), ("ce-sign", "equal-perturbation")):
        if key in sel.runs:
            return sel.runs[key]
    raise MissingDataError(f"fig1 needs an IFGS (ce-sign) run: run {sel.hint('ce-sign', 'equal-multiplier')}")


@report(
    "fig1",
    "Fig. 1: mean softmax of the initial and target class per iteration (IFGS / CE-sign), with S1/S2/S3",
    "figure",
)
def fig1(ctx: Context) -> ReportOutput:
    run_id = _fig1_run(ctx.selection)
    means = ctx.query("trajectory_means", runs=[run_id])
    shares = ctx.query("subspace_shares", runs=[run_id], h=ctx.confidence)
    m, s = _by_run(means)[run_id], _by_run(shares)[run_id]
    plt = _plt()
    fig, (a, b) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    a.plot(m["iteration"], m["p_init"], color="#444444", label="initial class $s_y$")
    a.plot(m["iteration"], m["p_target"], color=COLORS["ce-sign"], label="target class $s_t$")
    a.axhline(ctx.confidence, color="k", ls=":", lw=0.8)
    a.set_ylabel("mean softmax probability")
    a.set_ylim(-0.02, 1.02)
    a.legend(loc="center right")
    a.set_title(f"(a) CE-sign, {MODE_LABELS[ctx.selection.info[run_id]['mode']]} (run {run_id})", fontsize=9)
    b.stackplot(
        s["iteration"],
        s["s1"],
        s["s2"],
        s["s3"],
        colors=["#c6dbef", "#fdd0a2", "#c7e9c0"],
        labels=[f"S1 (other class ≥ {ctx.confidence})", "S2 (no class ≥ h)", f"S3 (target ≥ {ctx.confidence})"],
    )
    b.set_ylabel("share of images")
    b.set_xlabel("iteration")
    b.set_ylim(0, 1)
    b.legend(loc="center right", fontsize=7)
    b.set_title("(b) subspace of each image", fontsize=9)
    fig.tight_layout()
    return ReportOutput({"trajectory_means": means, "subspace_shares": shares}, figure=fig)


# --- Figs. 2 and 3 -----------------------------------------------------------------------------


def _fig_mode(ctx: Context, mode: str, name: str) -> ReportOutput:
    runs = ctx.selection.require(mode, name)
    means = ctx.query("trajectory_means", runs=list(runs.values()))
    pert = ctx.query("success_perturbation", runs=list(runs.values()))
    m, p = _by_run(means), _by_run(pert) if pert.num_rows else {}
    plt = _plt()
    fig = plt.figure(figsize=(10, 6.6))
    gs = fig.add_gridspec(2, 4)
    a, b = fig.add_subplot(gs[0, :2]), fig.add_subplot(gs[0, 2:])
    c1, c2 = fig.add_subplot(gs[1, :2]), fig.add_subplot(gs[1, 2:])
    for loss, run_id in runs.items():
        d = m.get(run_id)
        if d is None:
            continue
        a.plot(d["iteration"], d["p_target"], color=COLORS[loss], label=f"{LABELS[loss]} $s_t$")
        a.plot(d["iteration"], d["p_init"], color=COLORS[loss], ls="--", lw=1, label=f"{LABELS[loss]} $s_y$")
        b.plot(d["iteration"], d["z_target"], color=COLORS[loss], label=f"{LABELS[loss]} $z_t$")
        b.plot(d["iteration"], d["z_init"], color=COLORS[loss], ls="--", lw=1, label=f"{LABELS[loss]} $z_y$")
    a.set(
        xlabel="iteration", ylabel="mean softmax probability", title="(a) softmax of initial (--) and target (—) class"
    )
    b.set(xlabel="iteration", ylabel="mean logit", title="(b) logit of initial (--) and target (—) class")
    a.legend(ncol=2, fontsize=7)
    b.legend(ncol=2, fontsize=7)
    labels = [LABELS[loss] for loss in runs]
    for ax, col, norm in ((c1, "success_l1", "L1"), (c2, "success_l2", "L2")):
        values = [p.get(r, {}).get(col, np.array([])) for r in runs.values()]
        bp = ax.boxplot(
            [v if len(v) else [np.nan] for v in values],
            tick_labels=labels,
            patch_artist=True,
            showfliers=True,
            flierprops={"markersize": 2},
        )
        for patch, loss in zip(bp["boxes"], runs, strict=True):
            patch.set_facecolor(COLORS[loss])
            patch.set_alpha(0.5)
        ax.set(ylabel=f"{norm} of $x' - x$", title=f"(c) {norm} perturbation at the first iteration classified as $t$")
    fig.suptitle(
        f"{MODE_LABELS[mode].capitalize()} — {ctx.selection.classifier} on {ctx.selection.dataset}", fontsize=10
    )
    fig.tight_layout()
    return ReportOutput(
        {"trajectory_means": means, "success_perturbation": pert}, figure=fig, notes=_missing_notes(ctx.selection, mode)
    )


@report("fig2", "Fig. 2: equal multiplier — softmax, logits and perturbation at success, per source", "figure")
def fig2(ctx: Context) -> ReportOutput:
    return _fig_mode(ctx, "equal-multiplier", "fig2")


@report("fig3", "Fig. 3: equal perturbation — softmax, logits and perturbation at success, per source", "figure")
def fig3(ctx: Context) -> ReportOutput:
    return _fig_mode(ctx, "equal-perturbation", "fig3")


# --- Fig. 4 ------------------------------------------------------------------------------------


@report("fig4", "Fig. 4: equal multiplier — size of the added perturbation and of the gradient per iteration", "figure")
def fig4(ctx: Context) -> ReportOutput:
    runs = ctx.selection.require("equal-multiplier", "fig4")
    means = ctx.query("trajectory_means", runs=list(runs.values()))
    m = _by_run(means)
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for loss, run_id in runs.items():
        d = m.get(run_id)
        if d is None:
            continue
        last = d["iteration"] < d["iteration"].max()  # the last row has no step
        # exact zeros (m-logit with κ = 0 after success) cannot sit on a log axis: the line ends there
        a.plot(
            d["iteration"][last],
            np.where(d["step_l2"][last] > 0, d["step_l2"][last], np.nan),
            color=COLORS[loss],
            label=LABELS[loss],
        )
        b.plot(d["iteration"], np.where(d["grad_l2"] > 0, d["grad_l2"], np.nan), color=COLORS[loss], label=LABELS[loss])
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
    return ReportOutput(
        {"trajectory_means": means}, figure=fig, notes=_missing_notes(ctx.selection, "equal-multiplier")
    )


# --- Fig. 5 ------------------------------------------------------------------------------------


def _genuine(rows: list[dict[str, Any]]) -> dict[int, np.ndarray]:
    """Genuine images by image id, loaded through the dataset registry (numpy only)."""
    from advdb.analytics.images import genuine_images

    first = rows[0]
    ids = sorted({r["image_id"]: r["idx"] for r in rows}.items())
    try:
        arrays = genuine_images(first["dataset_kind"], first["dataset"], first["dataset_root"], [i for _, i in ids])
    except NotFoundError:
        raise MissingDataError(f"fig5 cannot reload images of a {first['dataset_kind']} dataset") from None
    return {image_id: arr for (image_id, _), arr in zip(ids, arrays, strict=True)}


@report("fig5", "Fig. 5: example perturbations x' − x per source, from the stored adversarial images", "figure")
def fig5(ctx: Context) -> ReportOutput:
    from advdb import artifacts

    mode = "equal-perturbation" if ctx.selection.by_mode("equal-perturbation") else "equal-multiplier"
    runs = ctx.selection.require(mode, "fig5")
    data = ctx.query("examples", runs=list(runs.values()), k=ctx.examples)
    rows = data.to_pylist()
    if not rows:
        raise MissingDataError(
            "fig5 needs adversarial image files of the same images from each source: run the attacks with --save-images"
        )
    genuine = _genuine(rows)
    root = ctx.session.location.artifacts_dir
    by_image: dict[int, dict[int, dict]] = {}
    for r in rows:
        by_image.setdefault(r["image_id"], {})[r["run_id"]] = r
    plt = _plt()
    n_img, n_src = len(by_image), len(runs)
    fig, axes = plt.subplots(n_img, n_src + 1, figsize=(1.7 * (n_src + 1), 1.8 * n_img), squeeze=False)
    for i, (image_id, per_run) in enumerate(sorted(by_image.items())):
        x = genuine[image_id]
        show = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
        axes[i, 0].imshow(show, cmap="gray" if x.shape[0] == 1 else None, vmin=0, vmax=1)
        axes[i, 0].set_title(
            f"genuine (y={next(iter(per_run.values()))['label']})"
            if i == 0
            else f"y={next(iter(per_run.values()))['label']}",
            fontsize=7,
        )
        for j, (loss, run_id) in enumerate(runs.items(), start=1):
            r = per_run[run_id]
            adv = artifacts.load(root / r["path"], expected_sha256=r["sha256"])
            d = adv - x
            scale = float(np.abs(d).max()) or 1.0
            vis = 0.5 + d / (2 * scale)  # 0 → grey; rescaled per image for display
            axes[i, j].imshow(
                vis[0] if vis.shape[0] == 1 else vis.transpose(1, 2, 0),
                cmap="seismic" if vis.shape[0] == 1 else None,
                vmin=0,
                vmax=1,
            )
            axes[i, j].set_title(f"{LABELS[loss]} (t={r['target']}, L2={np.linalg.norm(d):.2f})", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(f"Perturbations x' − x, {MODE_LABELS[mode]} (rescaled per image; grey = 0)", fontsize=9)
    fig.tight_layout()
    return ReportOutput({"examples": data}, figure=fig)


# --- Tables II, III and Fig. 6 (detector and circles runs) ---------------------------------------

ARCH_ORDER = ["alexnet", "resnet18", "vgg16", "resnet34", "resnet152"]


GROUP_NAMES = {
    **LABELS,
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


def _accuracy_pivot(
    rows: list[dict], row_key: str, tail: tuple[str, ...] = (), chance: AbstractSet[int] = frozenset()
) -> tuple[list[str], list[list[str]]]:
    """Rows (attack or group, in the paper's order) × detector architectures, accuracy in each
    cell; a detector run in ``chance`` shows as "at chance" instead of a result."""
    archs = {r["arch"] for r in rows}
    columns = [a for a in ARCH_ORDER if a in archs] + sorted(archs - set(ARCH_ORDER))
    cells = {(r[row_key], r["arch"]): r for r in rows}
    present = {k[0] for k in cells}
    order = [g for g in (*SOURCES, *FULL_ATTACKS, *tail) if g in present]

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


@report("table2", "Table II: detector accuracy, genuine vs one source's adversarial images", "table")
def table2(ctx: Context) -> ReportOutput:
    data = detector_rows(ctx, "table2")
    if not data.num_rows:
        raise MissingDataError(
            "table2 needs single-source detector runs: run `advdb retrain --arch ARCH --sources RUN` for each source"
        )
    rows = data.to_pylist()
    chance = at_chance(ctx, rows)
    pivot = _accuracy_pivot(rows, "source", chance=chance)
    return ReportOutput({"table2": data}, pivot, notes=_detector_notes(rows, chance))


@report("table3", "Table III: detector accuracy when trained on every source at once", "table")
def table3(ctx: Context) -> ReportOutput:
    data = detector_rows(ctx, "table3")
    if not data.num_rows:
        raise MissingDataError(
            "table3 needs an all-sources detector run: run `advdb retrain --arch ARCH --sources RUN,RUN,…`"
        )
    rows = data.to_pylist()
    chance = at_chance(ctx, rows)
    pivot = _accuracy_pivot(rows, "group", ("adversarial", "genuine", "overall"), chance=chance)
    return ReportOutput({"table3": data}, pivot, notes=_detector_notes(rows, chance))


@report(
    "fig6",
    "Fig. 6: the 2-D circles experiment — size of each source's perturbation over the plane (white: decision boundary)",
    "figure",
)
def fig6(ctx: Context) -> ReportOutput:
    data = ctx.query("fig6")
    if not data.num_rows:
        raise MissingDataError("fig6 needs a circles run: run `advdb circles`")
    cols = {c: data.column(c).to_numpy(zero_copy_only=False) for c in data.column_names}
    losses = [loss for loss in SOURCES if loss in set(cols["loss"])]
    plt = _plt()
    fig, axes = plt.subplots(1, len(losses), figsize=(3.2 * len(losses), 3.2), squeeze=False)
    for ax, loss in zip(axes[0], losses, strict=True):
        m = cols["loss"] == loss
        nx, ny = int(cols["ix"][m].max()) + 1, int(cols["iy"][m].max()) + 1
        grid = np.full((ny, nx), np.nan)
        pred = np.zeros((ny, nx))
        grid[cols["iy"][m], cols["ix"][m]] = np.log10(np.maximum(cols["grad_norm"][m], 1e-30))
        pred[cols["iy"][m], cols["ix"][m]] = cols["pred"][m]
        xs, ys = np.unique(cols["x"][m]), np.unique(cols["y"][m])
        im = ax.pcolormesh(xs, ys, grid, shading="auto", cmap="viridis")
        ax.contour(xs, ys, pred, levels=[0.5], colors="white", linewidths=1)
        ax.set(title=f"{LABELS[loss]}: log10 ‖P‖₂ towards inner", xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return ReportOutput({"fig6": data}, figure=fig)


# --- Margins (beyond the paper) ----------------------------------------------------------------


@report("margins", "Margins: the target's logit lead over every other class at the last iteration, per source", "table")
def margins(ctx: Context) -> ReportOutput:
    ids = ctx.selection.ids()
    if not ids:
        ctx.selection.require("equal-perturbation", "margins")
    data = ctx.query("margins", runs=ids)
    rows = {(r["loss"], r["mode"]): r for r in data.to_pylist()}
    cols = ["Source"] + [f"{MODE_LABELS[m].capitalize()}: {h}" for m in MODES for h in ("margin", "on target")]
    table = []
    for loss in SOURCES:
        line = [LABELS[loss]]
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
    notes = [
        "margin: z_t − max(z_y, strongest other logit) at iteration T, mean [95% confidence interval]; "
        "on target: share of images that are the target at T; margins.sql also gives the median and 10th percentile"
    ]
    return ReportOutput({"margins": data}, (cols, table), notes=notes)


# --- Transfer and defenses (beyond the paper) -----------------------------------------------------


def _source_runs(ctx: Context, what: str) -> list[int]:
    ids = ctx.selection.ids()
    if not ids:
        ctx.selection.require("equal-perturbation", what)
    return ids


def _margin_of(ctx: Context, ids: list[int]) -> dict[int, float]:
    """Each unified source run's mean margin at the last iteration (margins.sql)."""
    return {r["run_id"]: r["margin_mean"] for r in ctx.query("margins", runs=ids).to_pylist()}


def _rate(n: int, k: int) -> str:
    e = statistics.proportion(k / n, n)
    return f"{e.value:.0%} [{e.lo:.0%}, {e.hi:.0%}]"


def _transfer_figure(rows: list[dict[str, Any]], models: list[str], sel: RunSelection) -> Any:
    """Per mode, each source's targeted transfer onto each other model (bars, Wilson intervals)
    and its untargeted transfer (dots)."""
    modes = [m for m in MODES if sel.by_mode(m)]
    cells = {(r["mode"], r["loss"], r["model"]): r for r in rows}
    plt = _plt()
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
        ax.set_xticks(range(len(losses)), [LABELS[loss] for loss in losses])
        ax.set(title=f"transfer · {MODE_LABELS[mode]}", ylabel="share of adversarial images", ylim=(0, 1.05))
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
    ids = _source_runs(ctx, "transfer")
    data = ctx.query("transfer", runs=ids)
    if not data.num_rows:
        raise MissingDataError(
            "transfer needs transfer runs of the selected attack runs: run `advdb transfer --sources "
            f"{','.join(map(str, ids))} --model digits-cnn-seed1` (or another classifier)"
        )
    rows = data.to_pylist()
    models = list(dict.fromkeys(r["model"] for r in rows))
    cells = {(r["mode"], r["loss"], r["model"]): r for r in rows}
    margin = _margin_of(ctx, ids)
    cols = ["Mode", "Source", "margin at T"] + [f"{m}: {k}" for m in models for k in ("targeted", "untargeted")]
    table = []
    for mode in MODES:
        for loss, run_id in ctx.selection.by_mode(mode).items():
            line = [MODE_LABELS[mode], LABELS[loss], fmt(margin.get(run_id), 2)]
            for model in models:
                r = cells.get((mode, loss, model))
                line += (
                    ["–", "–"]
                    if r is None
                    else [_rate(r["images"], r["targeted_n"]), _rate(r["images"], r["untargeted_n"])]
                )
            table.append(line)
    notes = [
        "share of the images still adversarial on the attacked model (its stored files) that the other model "
        "classifies as the target (targeted) or not as the true class (untargeted) [95% Wilson interval]; "
        "margin at T: the source's mean z_t − max other logit at the last iteration (report margins)"
    ]
    resized = {r["model"]: json.loads(r["resized"]) for r in rows if r.get("resized")}
    notes += [
        f"{m} was trained at {to} px: the {frm} px images were resized to {to} px on the way in (bilinear, antialiased)"
        for m, (frm, to) in resized.items()
    ]
    figure = _transfer_figure(rows, models, ctx.selection)
    return ReportOutput({"transfer": data}, (cols, table), figure, notes=notes)


def _defense_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(transform, mode) → strengths, each source's survival and the genuine accuracy (weighted by images)."""
    curves: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        c = curves.setdefault((r["transform"], r["mode"]), {"sources": {}, "genuine": {}})
        c["sources"].setdefault(r["loss"], {})[r["strength"]] = (r["still_target"], r["images"])
        ok, n = c["genuine"].get(r["strength"], (0.0, 0))
        c["genuine"][r["strength"]] = (ok + r["genuine_correct"] * r["images"], n + r["images"])
    return curves


def _defense_table(curves: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    from advdb.transforms import create_transform

    losses = [loss for loss in SOURCES if any(loss in c["sources"] for c in curves.values())]
    cols = ["Mode", "Transform", "strength"] + [LABELS[loss] for loss in losses] + ["genuine accuracy"]
    table = []
    for (name, mode), c in sorted(curves.items(), key=lambda kv: (MODES.index(kv[0][1]), kv[0][0])):
        t = create_transform(name)
        for strength in sorted(c["genuine"]):
            cells = [c["sources"].get(loss, {}).get(strength) for loss in losses]
            ok, n = c["genuine"][strength]
            table.append(
                [MODE_LABELS[mode], name, f"{strength:g} ({t.parameter(strength)})"]
                + ["–" if v is None else f"{v[0]:.0%}" for v in cells]
                + [f"{ok / n:.1%}"]
            )
    return cols, table


@report(
    "defenses",
    "Defenses: share of each source's adversarial images still the target after an input transformation, "
    "against its strength, with the genuine images' accuracy",
    "figure",
)
def defenses(ctx: Context) -> ReportOutput:
    ids = _source_runs(ctx, "defenses")
    data = ctx.query("defenses", runs=ids)
    if not data.num_rows:
        raise MissingDataError(
            "defenses needs defense runs of the selected attack runs: run `advdb defend --sources "
            f"{','.join(map(str, ids))} --transform jpeg` (and gaussian-blur, bit-depth, median, tv)"
        )
    curves = _defense_curves(data.to_pylist())
    margin = {ctx.selection.runs.get((loss, mode)): (loss, mode) for loss, mode in ctx.selection.runs}
    margins = {margin[r]: m for r, m in _margin_of(ctx, ids).items() if r in margin}
    notes = [
        "share of the images still adversarial on the attacked model (its stored files) that are still the target "
        "after the transformation; genuine accuracy: their originals, transformed the same way; strength 0: none"
    ]
    return ReportOutput({"defenses": data}, _defense_table(curves), _defense_figure(curves, margins), notes)


def _defense_figure(curves: dict[tuple[str, str], dict[str, Any]], margins: dict[tuple[str, str], float]) -> Any:
    from advdb.transforms import create_transform

    names = [t for t in TRANSFORMS if any(name == t for name, _ in curves)]
    modes = [m for m in MODES if any(mode == m for _, mode in curves)]
    plt = _plt()
    fig, axes = plt.subplots(len(modes), len(names), figsize=(3 * len(names), 2.8 * len(modes)), squeeze=False)
    for i, mode in enumerate(modes):
        for j, name in enumerate(names):
            ax, c = axes[i][j], curves.get((name, mode))
            ax.set(title=f"{name} · {MODE_LABELS[mode]}", xlabel="strength", ylim=(-0.03, 1.03))
            if c is None:
                continue
            for loss, points in c["sources"].items():
                xs = sorted(points)
                m = margins.get((loss, mode))
                label = LABELS[loss] + (f" (margin {m:.1f})" if m is not None else "")
                ax.plot(xs, [points[x][0] for x in xs], marker=".", color=COLORS[loss], label=label)
            xs = sorted(c["genuine"])
            ax.plot(xs, [c["genuine"][x][0] / c["genuine"][x][1] for x in xs], "k--", label="genuine accuracy")
            ax.set_xticks(xs, [create_transform(name).parameter(x) for x in xs], rotation=45, fontsize=6)
            if j == 0:
                ax.set_ylabel("share of images")
                ax.legend(loc="lower left", fontsize=6)  # per row: the margins are the mode's
    fig.tight_layout()
    return fig


# --- Curves and the worst case over attacks (beyond the paper; advdb/analytics/curves.py) ----------


@report(
    "curves",
    "Curves: share of images at the target against the iteration budget and the perturbation budget "
    "(L∞, L2, L1), per source and mode, with 95% Wilson intervals",
    "figure",
)
def curves(ctx: Context) -> ReportOutput:
    from advdb.analytics.curves import curves_report

    return ReportOutput(*curves_report(ctx.session, ctx.selection))


@report(
    "robustness",
    "Robustness: robust accuracy against the iteration and perturbation budget, per attack and for the worst "
    "case over them (an image counts as broken if any attack reached its target)",
    "figure",
)
def robustness(ctx: Context) -> ReportOutput:
    from advdb.analytics.curves import robustness_report

    return ReportOutput(*robustness_report(ctx.session, ctx.selection))


# --- API -------------------------------------------------------------------------------------------


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
) -> ReportOutput:
    """Build one report's data (and figure) over an open session; ``model`` picks the newest runs
    on that classifier when the store attacked several."""
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence must lie between 0 and 1, got {confidence}")
    if not 1 <= examples <= 64:
        raise ConfigError(f"--examples must be between 1 and 64, got {examples}")
    rep = get_report(name)
    selection = select_runs(session, runs, model=model)
    output = rep.build(Context(session, selection, confidence, examples))
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
    """A report's data as Arrow tables (``.to_pandas()`` for DataFrames), for notebooks."""
    from advdb.analytics.query import checked_location

    with QuerySession(checked_location(db)) as session:
        out = build(session, name, runs=runs, confidence=confidence)
    if out.figure is not None:
        _plt().close(out.figure)
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
        _plt().close(out.figure)
    return files


def default_out_dir(location: StoreLocation) -> Path:
    """``reports/`` beside a SQLite store, else in the working directory."""
    if location.sqlite_path is not None:
        return location.sqlite_path.parent / "reports"
    return Path.cwd() / "reports"
