"""Fig. 5: example perturbations x' − x per source, from the stored adversarial image files.

:func:`fig5_data` is the query; :func:`fig5_pixels` reloads the genuine images and the checked
adversarial files (numpy); :func:`fig5_figure` draws them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from advdb.analytics.reports.base import Context, ReportOutput, mode_label, report
from advdb.analytics.reports.plotting import pyplot
from advdb.analytics.selection import MissingDataError, source_label
from advdb.errors import NotFoundError


def fig5_data(ctx: Context) -> tuple[str, dict[str, int], dict[str, pa.Table]]:
    """The mode shown (equal perturbation when there are such runs), its runs and the examples' files."""
    mode = "equal-perturbation" if ctx.selection.by_mode("equal-perturbation") else "equal-multiplier"
    runs = ctx.selection.require(mode, "fig5")
    data = ctx.query("examples", runs=list(runs.values()), k=ctx.examples)
    if not data.num_rows:
        raise MissingDataError(
            "fig5 needs adversarial image files of the same images from each source: run the attacks with --save-images"
        )
    return mode, runs, {"examples": data}


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


def fig5_pixels(ctx: Context, data: pa.Table) -> tuple[dict[int, np.ndarray], dict[int, dict[int, dict[str, Any]]]]:
    """Genuine images by image id, and per image and run its row with the adversarial array (sha256 checked)."""
    from advdb import artifacts

    rows = data.to_pylist()
    genuine = _genuine(rows)
    root = ctx.session.location.artifacts_dir
    by_image: dict[int, dict[int, dict[str, Any]]] = {}
    for r in rows:
        adv = artifacts.load(root / r["path"], expected_sha256=r["sha256"])
        by_image.setdefault(r["image_id"], {})[r["run_id"]] = {**r, "adversarial": adv}
    return genuine, by_image


def fig5_figure(
    mode: str, runs: dict[str, int], genuine: dict[int, np.ndarray], by_image: dict[int, dict[int, dict[str, Any]]]
) -> Any:
    plt = pyplot()
    n_img, n_src = len(by_image), len(runs)
    fig, axes = plt.subplots(n_img, n_src + 1, figsize=(1.7 * (n_src + 1), 1.8 * n_img), squeeze=False)
    for i, (image_id, per_run) in enumerate(sorted(by_image.items())):
        x = genuine[image_id]
        label = next(iter(per_run.values()))["label"]
        show = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
        axes[i, 0].imshow(show, cmap="gray" if x.shape[0] == 1 else None, vmin=0, vmax=1)
        axes[i, 0].set_title(f"genuine (y={label})" if i == 0 else f"y={label}", fontsize=7)
        for j, (loss, run_id) in enumerate(runs.items(), start=1):
            r = per_run[run_id]
            d = r["adversarial"] - x
            scale = float(np.abs(d).max()) or 1.0
            vis = 0.5 + d / (2 * scale)  # 0 → grey; rescaled per image for display
            axes[i, j].imshow(
                vis[0] if vis.shape[0] == 1 else vis.transpose(1, 2, 0),
                cmap="seismic" if vis.shape[0] == 1 else None,
                vmin=0,
                vmax=1,
            )
            title = f"{source_label(loss)} (t={r['target']}, L2={np.linalg.norm(d):.2f})"
            axes[i, j].set_title(title, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(f"Perturbations x' − x, {mode_label(mode)} (rescaled per image; grey = 0)", fontsize=9)
    fig.tight_layout()
    return fig


@report("fig5", "Fig. 5: example perturbations x' − x per source, from the stored adversarial images", "figure")
def fig5(ctx: Context) -> ReportOutput:
    mode, runs, data = fig5_data(ctx)
    if not ctx.draw:
        return ReportOutput(data)
    genuine, by_image = fig5_pixels(ctx, data["examples"])
    return ReportOutput(data, figure=fig5_figure(mode, runs, genuine, by_image))
