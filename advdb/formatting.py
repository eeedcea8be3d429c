"""Values as people read them: durations, numbers, times and column headings.

Shared by the terminal tables (``advdb runs list``, ``report``, ``sql``) and the web view.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

#: Human headings for the store's column names (others are shown with ``_`` as spaces).
HEADINGS: dict[str, str] = {
    "run_id": "run",
    "n_images": "images",
    "wall_seconds": "time",
    "created_at": "created",
    "started_at": "started",
    "finished_at": "finished",
    "updated_at": "updated",
    "heartbeat_at": "heartbeat",
    "worker_id": "worker",
    "batches_done": "batches",
    "live_workers": "live",
    "images_done": "done",
    "first_success_iter": "first success",
    "success_l2": "L2 at success",
    "final_l2": "final L2",
    "attack_seconds": "attack time",
    "trajectory_rows": "trajectory rows",
}
DURATION_COLUMNS = frozenset({"wall_seconds", "attack_seconds", "seconds"})


def heading(column: str) -> str:
    return HEADINGS.get(column, column.replace("_", " "))


def duration(seconds: float | None) -> str:
    """``0.8 s``, ``12.4 s``, ``3 min 2 s``, ``2 h 5 min``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(round(s % 60))} s"
    return f"{int(s // 3600)} h {int(round(s % 3600 / 60))} min"


def number(v: float) -> str:
    """Four significant digits, thousands separated, no exponent for ordinary sizes."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
        return f"{v:.3g}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def value(v: Any, column: str = "") -> str:
    """Any stored value as text (``–`` for none)."""
    if v is None:
        return "–"
    if column in DURATION_COLUMNS and isinstance(v, (int, float)):
        return duration(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return number(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)
