"""What the pages show, computed from query results: filters, sorting, summaries, images."""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from advdb import formatting
from advdb.analytics.selection import order_names
from advdb.errors import ConfigError, DataError, NotFoundError
from advdb.vocabulary import MODES, SOURCES
from advdb.web.reader import StoreReader

RUN_FILTERS = ("kind", "status", "loss", "mode", "model")
RUN_COLUMNS = [
    "run_id",
    "kind",
    "status",
    "attack",
    "loss",
    "mode",
    "model",
    "n_images",
    "images_done",
    "succeeded",
    "iterations",
    "device",
    "created_at",
    "wall_seconds",
    "name",
]
COMPARE_FIELDS = [
    "kind",
    "status",
    "attack",
    "loss",
    "mode",
    "model",
    "dataset",
    "n_images",
    "iterations",
    "seed",
    "device",
    "images_done",
    "succeeded",
    "trajectory_rows",
    "wall_seconds",
    "attack_seconds",
]


def cell(v: Any, column: str = "") -> str:
    return formatting.value(v, column)


def one(table: pa.Table, missing: str) -> dict[str, Any]:
    """The single row of ``table``; a NotFoundError saying ``missing`` when there is none."""
    rows = table.to_pylist()
    if not rows:
        raise NotFoundError(missing)
    return dict(rows[0])


def as_json(v: Any) -> Any:
    """A JSON column as Python (SQLite hands it over as text)."""
    return json.loads(v) if isinstance(v, str) else v


def sort_key(value: str | None) -> str:
    return value if value in RUN_COLUMNS else "run_id"


def sorted_rows(rows: list[dict[str, Any]], key: str, desc: bool) -> list[dict[str, Any]]:
    """Rows by ``key`` (missing values last), newest first by default."""
    if key == "run_id" and not desc:
        return rows  # the query's order: newest first
    present = [r for r in rows if r[key] is not None]
    missing = [r for r in rows if r[key] is None]
    return sorted(present, key=lambda r: r[key], reverse=desc) + missing


def filter_choices(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The values each filter can take, from the runs in the store: sources as reports list them
    (the paper's four in its order, then any other, a plugin's, by name), the rest alphabetically."""
    canon = {"loss": SOURCES, "mode": MODES}
    return {k: order_names((str(r[k]) for r in rows if r[k] is not None), canon.get(k, ())) for k in RUN_FILTERS}


def timing(run: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("created_at", "started_at", "finished_at", "wall_seconds", "attack_seconds")
    return [(formatting.heading(k), cell(run.get(k), k)) for k in keys]


def success(run: dict[str, Any]) -> str:
    done, ok = run.get("images_done") or 0, run.get("succeeded") or 0
    return f"{ok / done:.1%} of {done:,} images reached their target" if done else "no image committed yet"


def threshold(value: str | None) -> float:
    try:
        h = float(value) if value else 0.9
    except ValueError:
        raise ConfigError(f"h must be a number between 0 and 1, got {value!r}") from None
    if not 0 < h < 1:
        raise ConfigError(f"h must lie between 0 and 1, got {h}")
    return h


def latest_attack(reader: StoreReader) -> list[int]:
    rows = reader.query("ui_runs", kind="attack", status=None, loss=None, mode=None, model=None).to_pylist()
    return [rows[0]["run_id"]] if rows else []


def run_labels(reader: StoreReader, runs: list[int]) -> dict[int, str]:
    """``run 3 (ce-sign, equal-perturbation)`` for each run; a run that does not exist is a NotFoundError."""
    rows = {r["run_id"]: r for r in reader.query("ui_runs", **dict.fromkeys(RUN_FILTERS)).to_pylist()}
    missing = [r for r in runs if r not in rows]
    if missing:
        raise NotFoundError(f"no run {missing[0]} in the store")
    labels = {}
    for r in runs:
        what = ", ".join(str(v) for v in (rows[r]["loss"] or rows[r]["attack"], rows[r]["mode"]) if v)
        labels[r] = f"run {r} ({what})" if what else f"run {r}"
    return labels


def by_run(rows: list[dict[str, Any]], runs: list[int]) -> dict[int, dict[str, list[Any]]]:
    """Column lists per run, from rows that carry ``run_id``."""
    out: dict[int, dict[str, list[Any]]] = {r: {} for r in runs}
    for row in rows:
        cols = out[row["run_id"]]
        for k, v in row.items():
            cols.setdefault(k, []).append(v)
    return out


def compare_rows(info: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    rows = [(formatting.heading(f), [cell(run.get(f), f) for run in info]) for f in COMPARE_FIELDS]
    rows.append(("success", [success(run) for run in info]))
    return rows


@dataclass(frozen=True)
class BuiltReport:
    """A report as ``advdb report`` makes it: its table (as shown), its figure as PNG, its notes."""

    title: str
    kind: str
    columns: list[str]
    rows: list[list[str]]
    png: bytes | None
    notes: list[str]


class ReportCache:
    """Reports built once per store version: a figure takes about a second to draw."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[tuple[str, str], BuiltReport] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, reader: StoreReader, name: str) -> BuiltReport:
        key = (name, reader.version())
        with self._lock:  # one build at a time: concurrent requests for a figure wait for the first
            if key not in self._items:
                self._items[key] = _build_report(reader, name)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return self._items[key]


def _build_report(reader: StoreReader, name: str) -> BuiltReport:
    from advdb.analytics.reports import REPORTS, build, get_report

    report = get_report(name)
    with reader.lock:
        output = build(reader.session(), name)
    png = None
    if output.figure is not None:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        output.figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(output.figure)
        png = buf.getvalue()
    columns, rows = output.display if output.display is not None else ([], [])
    return BuiltReport(REPORTS[name].title, report.kind, list(columns), [list(r) for r in rows], png, output.notes)


class ImageCache:
    """Attacked images as PNG, the last ``size`` of them kept; genuine images kept per data set
    and index, so a request never rebuilds the data set.

    Every request for an adversarial image or a difference hashes its file first and refuses
    it (a DataError) when the sha256 is not the one the store recorded, cached or not.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._pngs: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._genuine: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def png(self, reader: StoreReader, run_id: int, image_id: int, which: str) -> bytes:
        """PNG of an attacked image: genuine, adversarial, or the difference rescaled around mid-grey."""
        if which not in ("genuine", "adversarial", "difference"):
            raise NotFoundError(f"no image {which!r}: genuine, adversarial or difference")
        info = one(reader.query("ui_image", run=run_id, image=image_id), f"no image {image_id} in run {run_id}")
        path = None
        if which != "genuine":
            path = _checked_artifact(reader, run_id, image_id, info)
        shape = as_json(info["image_shape"]) or [None]
        key = (
            which,
            info["dataset_kind"],
            info["dataset"],
            info["dataset_root"],
            info["idx"],
            shape[-1],
            path,
            info["sha256"],
        )
        with self._lock:
            if key in self._pngs:
                self._pngs.move_to_end(key)
                self.hits += 1
                return self._pngs[key]
        png = _encode_png(self._pixels(info, shape[-1], which, path))
        with self._lock:
            self._pngs[key] = png
            while len(self._pngs) > self.size:
                self._pngs.popitem(last=False)
        return png

    def _pixels(self, info: dict[str, Any], size: int | None, which: str, path: Any) -> np.ndarray:
        from advdb import artifacts
        from advdb.analytics.images import genuine_images

        gkey = (info["dataset_kind"], info["dataset"], info["dataset_root"], info["idx"], size)
        with self._lock:
            genuine = self._genuine.get(gkey)
        if genuine is None:
            genuine = genuine_images(
                info["dataset_kind"], info["dataset"], info["dataset_root"], [info["idx"]], image_size=size
            )[0]
            with self._lock:
                self._genuine[gkey] = genuine
                while len(self._genuine) > self.size:
                    self._genuine.popitem(last=False)
        if which == "genuine":
            return np.asarray(genuine)
        adv = artifacts.load(path, expected_sha256=info["sha256"])  # checked again: it may change meanwhile
        return adv if which == "adversarial" else _rescaled(adv.astype(np.float32) - genuine.astype(np.float32))


def _checked_artifact(reader: StoreReader, run_id: int, image_id: int, info: dict[str, Any]) -> Any:
    """The adversarial file's path, after checking its sha256 against the store's."""
    from advdb import artifacts

    if info["path"] is None:
        raise NotFoundError(f"run {run_id} stored no image file for image {image_id}")
    path = reader.location.artifacts_dir / info["path"]
    if not path.is_file():
        raise NotFoundError(
            f"the adversarial image file of image {image_id} in run {run_id} is missing ({info['path']})"
        )
    if artifacts.sha256_of(path) != info["sha256"]:
        raise DataError(
            f"the adversarial image file of image {image_id} in run {run_id} has changed since it was stored "
            f"(sha256 mismatch): it is not shown ({info['path']})"
        )
    return path


def _encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    arr = np.clip(np.asarray(pixels, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    im = Image.fromarray(arr[:, :, 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr, mode="RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _rescaled(d: np.ndarray) -> np.ndarray:
    """``d`` mapped to [0, 1] with 0 at mid-grey and the largest |d| at 0 or 1."""
    m = float(np.abs(d).max())
    return 0.5 + d / (2 * m) if m > 0 else np.full_like(d, 0.5)


def curve_plots(reader: StoreReader, runs: list[int], labels: dict[int, str]) -> dict[str, str]:
    """The runs' iteration curve and ε curves (report curves' queries) as Plotly figures; none
    for runs that committed no image yet."""
    from advdb.analytics.curves import NORM_LABELS, NORMS, epsilon_curves, iteration_curves, resampled
    from advdb.web import figures

    its = iteration_curves(reader.query("curves_iterations", runs=runs))
    eps = epsilon_curves(reader.query("curves_images", runs=runs))
    shown = [r for r in runs if r in its and r in eps]
    if not shown:
        return {}
    it_series, eps_series = [], []
    for r in shown:
        reached, at = resampled(its[r]["reached"]), resampled(its[r]["at_target"])
        lo_hi = reached.band()
        it_series.append(
            (
                labels[r],
                {
                    "x": reached.x.tolist(),
                    "reached": reached.share.tolist(),
                    "at_target": at.share.tolist(),
                    "lo": lo_hi[0].tolist(),
                    "hi": lo_hi[1].tolist(),
                },
            )
        )
        per_norm = {}
        for n in NORMS:
            c = resampled(eps[r][n])
            lo, hi = c.band()
            per_norm[n] = {"x": c.x.tolist(), "share": c.share.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
        eps_series.append((labels[r], per_norm))
    return {
        "iterations": figures.iteration_curves(it_series),
        "epsilon": figures.epsilon_curves(eps_series, [(n, NORM_LABELS[n]) for n in NORMS]),
    }
