"""Defenses (beyond the paper): the share of each source's adversarial images still the target
after an input transformation, against its strength, with the genuine images' accuracy.

Transforms are listed in ``vocabulary.TRANSFORMS``'s order, then any other (a plugin's) by name;
a transform this process does not know shows its strengths as numbers.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from advdb.analytics.reports.base import Context, ReportOutput, margin_of, mode_label, report, source_runs
from advdb.analytics.reports.plotting import color_of, pyplot
from advdb.analytics.selection import MissingDataError, order_names, source_label
from advdb.errors import ConfigError
from advdb.vocabulary import MODES, SOURCES, TRANSFORMS

Curves = dict[tuple[str, str], dict[str, Any]]

NOTE = (
    "share of the images still adversarial on the attacked model (its stored files) that are still the target "
    "after the transformation; genuine accuracy: their originals, transformed the same way; strength 0: none"
)


def defenses_data(ctx: Context) -> dict[str, pa.Table]:
    ids = source_runs(ctx, "defenses")
    data = ctx.query("defenses", runs=ids)
    if not data.num_rows:
        raise MissingDataError(
            "defenses needs defense runs of the selected attack runs: run `advdb defend --sources "
            f"{','.join(map(str, ids))} --transform jpeg` (and gaussian-blur, bit-depth, median, tv)"
        )
    return {"defenses": data}


def defense_curves(rows: list[dict[str, Any]]) -> Curves:
    """(transform, mode) → strengths, each source's survival and the genuine accuracy (weighted by images)."""
    curves: Curves = {}
    for r in rows:
        c = curves.setdefault((r["transform"], r["mode"]), {"sources": {}, "genuine": {}})
        c["sources"].setdefault(r["loss"], {})[r["strength"]] = (r["still_target"], r["images"])
        ok, n = c["genuine"].get(r["strength"], (0.0, 0))
        c["genuine"][r["strength"]] = (ok + r["genuine_correct"] * r["images"], n + r["images"])
    return curves


def parameter(name: str, strength: float) -> str:
    """A strength as the transform's own parameter (``quality 90``); just the number for a transform
    this process has not registered (a plugin's, absent here)."""
    from advdb.transforms import create_transform

    try:
        return create_transform(name).parameter(strength)
    except ConfigError:
        return f"{strength:g}"


def defense_table(curves: Curves) -> tuple[list[str], list[list[str]]]:
    losses = order_names((loss for c in curves.values() for loss in c["sources"]), SOURCES)
    cols = ["Mode", "Transform", "strength"] + [source_label(loss) for loss in losses] + ["genuine accuracy"]
    table = []
    for (name, mode), c in sorted(curves.items(), key=lambda kv: (MODES.index(kv[0][1]), kv[0][0])):
        for strength in sorted(c["genuine"]):
            cells = [c["sources"].get(loss, {}).get(strength) for loss in losses]
            ok, n = c["genuine"][strength]
            table.append(
                [mode_label(mode), name, f"{strength:g} ({parameter(name, strength)})"]
                + ["–" if v is None else f"{v[0]:.0%}" for v in cells]
                + [f"{ok / n:.1%}"]
            )
    return cols, table


def defense_figure(curves: Curves, margins: dict[tuple[str, str], float]) -> Any:
    """One panel per mode (rows) and transform (columns): each source's survival against the strength."""
    names = order_names((name for name, _ in curves), TRANSFORMS)
    modes = [m for m in MODES if any(mode == m for _, mode in curves)]
    plt = pyplot()
    fig, axes = plt.subplots(len(modes), len(names), figsize=(3 * len(names), 2.8 * len(modes)), squeeze=False)
    for i, mode in enumerate(modes):
        for j, name in enumerate(names):
            ax, c = axes[i][j], curves.get((name, mode))
            ax.set(title=f"{name} · {mode_label(mode)}", xlabel="strength", ylim=(-0.03, 1.03))
            if c is None:
                continue
            for loss in order_names(c["sources"], SOURCES):
                points = c["sources"][loss]
                xs = sorted(points)
                m = margins.get((loss, mode))
                label = source_label(loss) + (f" (margin {m:.1f})" if m is not None else "")
                ax.plot(xs, [points[x][0] for x in xs], marker=".", color=color_of(loss), label=label)
            xs = sorted(c["genuine"])
            ax.plot(xs, [c["genuine"][x][0] / c["genuine"][x][1] for x in xs], "k--", label="genuine accuracy")
            ax.set_xticks(xs, [parameter(name, x) for x in xs], rotation=45, fontsize=6)
            if j == 0:
                ax.set_ylabel("share of images")
                ax.legend(loc="lower left", fontsize=6)  # per row: the margins are the mode's
    fig.tight_layout()
    return fig


@report(
    "defenses",
    "Defenses: share of each source's adversarial images still the target after an input transformation, "
    "against its strength, with the genuine images' accuracy",
    "figure",
)
def defenses(ctx: Context) -> ReportOutput:
    data = defenses_data(ctx)
    curves = defense_curves(data["defenses"].to_pylist())
    key_of = {run_id: key for key, run_id in ctx.selection.runs.items()}
    margins = {key_of[r]: m for r, m in margin_of(ctx, ctx.selection.ids()).items() if r in key_of}
    figure = defense_figure(curves, margins) if ctx.draw else None
    return ReportOutput(data, defense_table(curves), figure, [NOTE])
