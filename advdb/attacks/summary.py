"""Per-image summaries and trajectory columns from a batch's host statistics (pure numpy)."""

from __future__ import annotations

import numpy as np

from advdb.attacks.stats import COL, STAT_COLUMNS


def first_success(stats: np.ndarray, t: np.ndarray) -> np.ndarray:
    """First row index whose prediction is the target, per image; -1 if never. ``stats`` is [R, B, K]."""
    hit = stats[:, :, COL["pred"]].astype(np.int64) == t[None, :]
    first = hit.argmax(0)
    return np.where(hit.any(0), first, -1)


def summarise(stats: np.ndarray, y: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image summary columns (NaN where there is no success)."""
    R, B, _ = stats.shape
    first = first_success(stats, t)
    ok = first >= 0
    rows = np.where(ok, first, 0)
    at = stats[rows, np.arange(B)]
    last = stats[-1]

    def masked(col: str) -> np.ndarray:
        return np.where(ok, at[:, COL[col]], np.nan).astype(np.float64)

    return {
        "label": y.astype(np.int32),
        "target": t.astype(np.int32),
        "p_init": stats[0, :, COL["p_init"]],
        "first_success_iter": np.where(ok, first, np.nan),
        "success_l1": masked("l1"),
        "success_l2": masked("l2"),
        "success_linf": masked("linf"),
        "final_pred": last[:, COL["pred"]].astype(np.int32),
        "final_p_target": last[:, COL["p_target"]],
        "final_z_target": last[:, COL["z_target"]],
        "final_l1": last[:, COL["l1"]],
        "final_l2": last[:, COL["l2"]],
        "final_linf": last[:, COL["linf"]],
        "n_iterations": np.full(B, R, dtype=np.int32),
    }


def trajectory_columns(
    stats: np.ndarray, image_ids: np.ndarray, search_step: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Trajectory columns in key order (image, iteration) from [R, B, K] statistics."""
    R, B, _ = stats.shape
    by_col = np.ascontiguousarray(stats.transpose(2, 1, 0))  # [K, B, R]
    cols: dict[str, np.ndarray] = {
        "image_id": np.repeat(image_ids.astype(np.int32), R),
        "iteration": np.tile(np.arange(R, dtype=np.int32), B),
        "search_step": (
            np.ascontiguousarray(search_step.T).reshape(-1).astype(np.int16)
            if search_step is not None
            else np.zeros(R * B, dtype=np.int16)
        ),
    }
    for k, name in enumerate(STAT_COLUMNS):
        v = by_col[k].reshape(-1)
        cols[name] = v.astype(np.int16) if name == "pred" else v
    return cols
