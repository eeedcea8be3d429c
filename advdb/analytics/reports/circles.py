"""Fig. 6: the 2-D circles experiment — the size of each source's perturbation over the plane."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from advdb.analytics.reports.base import Context, ReportOutput, report
from advdb.analytics.reports.plotting import pyplot
from advdb.analytics.selection import MissingDataError, order_names, source_label
from advdb.vocabulary import SOURCES


def fig6_data(ctx: Context) -> dict[str, pa.Table]:
    data = ctx.query("fig6")
    if not data.num_rows:
        raise MissingDataError("fig6 needs a circles run: run `advdb circles`")
    return {"fig6": data}


def fig6_figure(data: pa.Table) -> Any:
    cols = {c: data.column(c).to_numpy(zero_copy_only=False) for c in data.column_names}
    losses = order_names(set(cols["loss"]), SOURCES)
    plt = pyplot()
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
        title = f"{source_label(loss)}: log10 ‖P‖₂ towards inner"
        ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


@report(
    "fig6",
    "Fig. 6: the 2-D circles experiment — size of each source's perturbation over the plane (white: decision boundary)",
    "figure",
)
def fig6(ctx: Context) -> ReportOutput:
    data = fig6_data(ctx)
    return ReportOutput(data, figure=fig6_figure(data["fig6"]) if ctx.draw else None)
