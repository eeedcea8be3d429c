"""Curves from stored runs (beyond the paper): success against the iteration budget and against
the perturbation budget, and the worst case over attacks — all from the trajectories a run
stored, with no new attack.

* *Iteration budget* (``curves_iterations.sql``): the share of images that had reached their
  target by iteration k (first success ≤ k), and the share at the target at k itself (an
  image can leave it again), for every k ≤ T.
* *Perturbation budget* (``curves_images.sql``): the share of images that were at their
  target at some iteration with ‖xₙ − x₀‖ ≤ ε, for L∞, L2 and L1 — the empirical distribution
  of each image's smallest successful perturbation along the attack's path, an upper bound on
  its true minimal adversarial perturbation.
* *Worst case over attacks* (``robustness.sql``): for runs that attacked the same images of
  the same classifier, an image is broken at a budget if *any* run reached its target within
  it; robust accuracy is the share no run broke (the way AutoAttack reports).

Every share comes with its 95 % Wilson interval. The curves count the float trajectory; the
stored image files (``artifacts.still_adversarial``: 8-bit rounding can undo a success) are
shown beside them where they differ (``curves_stored.sql``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa

from advdb.analytics import statistics
from advdb.analytics.palette import color_of
from advdb.analytics.query import QuerySession
from advdb.analytics.selection import MissingDataError, RunSelection, source_label
from advdb.analytics.sqlfiles import sql_text
from advdb.errors import ConfigError
from advdb.vocabulary import FULL_ATTACKS, MODES

NORMS: tuple[str, ...] = ("linf", "l2", "l1")
NORM_LABELS = {"linf": "L∞", "l2": "L2", "l1": "L1"}
NORM_ASCII = {"linf": "Linf", "l2": "L2", "l1": "L1"}  # table headers (LaTeX has no ∞ without math mode)
#: Budgets a table may show: 1-2-5 iterations, L∞ in steps of 1/255, L2 and L1 in 1-2.5-5 steps.
ITERATION_LADDER: tuple[int, ...] = tuple(int(m * 10**e) for e in range(6) for m in (1, 2, 5))
EPS_LADDER: dict[str, tuple[float, ...]] = {
    "linf": tuple(k / 255 for k in (1, 2, 4, 8, 16, 32, 64, 128, 255)),
    "l2": tuple(m * 10.0**e for e in range(-2, 4) for m in (1, 2.5, 5)),
    "l1": tuple(m * 10.0**e for e in range(-1, 6) for m in (1, 2.5, 5)),
}
MODE_LABELS = {"equal-multiplier": "equal multiplier", "equal-perturbation": "equal perturbation"}
ATTACK_LABELS = {"ifgs": "IFGS", "cw": "CW-L2", "lbfgs": "L-BFGS"}
QUANTILES = (0.25, 0.5, 0.75)  # the budgets a table shows: near these shares of the pooled successes
EPS_NOTE = (
    "ε curves: the share of images classified as their target at some iteration with ‖xₙ − x₀‖ ≤ ε, i.e. the "
    "distribution of each image's smallest successful perturbation along this attack's path — an upper bound on "
    "its true minimal adversarial perturbation, not the minimum itself"
)
FLOAT_NOTE = (
    "counted on the float trajectory; 'stored files at T': the image files the run wrote, classified again "
    "(8-bit PNG rounding can undo a success)"
)


# --- curves as numbers ----------------------------------------------------------------------------


def _z() -> float:
    """The normal quantile of the interval (1.96 for 95 %), from the standard library: importing
    scipy.stats costs more than a whole curve report."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + statistics.CONFIDENCE / 2)


def wilson(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of ``k`` successes in ``n`` trials, vectorised
    (:func:`advdb.analytics.statistics.proportion` for one point)."""
    k = np.asarray(k, dtype=np.float64)
    if n <= 0:
        nan = np.full(k.shape, np.nan)
        return nan, nan
    z, p = _z(), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


@dataclass(frozen=True)
class Curve:
    """A share of ``n`` images against a budget: ``count[i]`` images at budget ``x[i]`` (a step
    function, constant until the next ``x``)."""

    x: np.ndarray
    count: np.ndarray
    n: int

    @property
    def share(self) -> np.ndarray:
        return self.count / self.n if self.n else np.full(len(self.count), np.nan)

    def band(self) -> tuple[np.ndarray, np.ndarray]:
        return wilson(self.count, self.n)

    def at(self, budget: float) -> int:
        """Images counted at ``budget`` (the step at or before it; 0 before the first)."""
        i = int(np.searchsorted(self.x, budget, side="right")) - 1
        return int(self.count[i]) if i >= 0 else 0

    def reaches(self, share: float) -> float:
        """The smallest budget at which the share reaches ``share`` (inf if it never does)."""
        hit = np.nonzero(self.count >= share * self.n)[0] if self.n else np.array([], dtype=np.int64)
        return float(self.x[hit[0]]) if len(hit) else float("inf")


def epsilon_curve(minima: np.ndarray, n: int | None = None) -> Curve:
    """The share of images whose smallest successful perturbation is ≤ ε, at every ε where it
    changes (NaN or inf: never at the target); starts at ε = 0."""
    v = np.asarray(minima, dtype=np.float64)
    n = len(v) if n is None else n
    found = np.sort(v[np.isfinite(v)])
    x, counts = np.unique(found, return_counts=True)
    if not len(x) or x[0] > 0:
        x, counts = np.concatenate([[0.0], x]), np.concatenate([[0], counts])
    return Curve(x, np.cumsum(counts), n)


def iteration_curves(table: pa.Table) -> dict[int, dict[str, Curve]]:
    """Per run (rows of ``curves_iterations.sql``): ``reached`` (first success ≤ k) and
    ``at_target`` (at the target at k)."""
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    out: dict[int, dict[str, Curve]] = {}
    for run_id in np.unique(cols["run_id"]) if table.num_rows else []:
        m = cols["run_id"] == run_id
        x, n = cols["iteration"][m].astype(np.int64), int(cols["images"][m][0])
        out[int(run_id)] = {key: Curve(x, cols[key][m].astype(np.int64), n) for key in ("reached", "at_target")}
    return out


def image_minima(table: pa.Table) -> dict[int, dict[str, np.ndarray]]:
    """Per run (rows of ``curves_images.sql``): each image's smallest successful perturbation per
    norm (NaN: never at the target)."""
    runs = table.column("run_id").to_numpy(zero_copy_only=False) if table.num_rows else np.array([], np.int64)
    cols = {n: table.column(f"min_{n}").to_numpy(zero_copy_only=False).astype(np.float64) for n in NORMS}
    return {int(r): {n: v[runs == r] for n, v in cols.items()} for r in np.unique(runs)}


def epsilon_curves(table: pa.Table) -> dict[int, dict[str, Curve]]:
    """Per run (rows of ``curves_images.sql``): one ε curve per norm."""
    return {r: {n: epsilon_curve(v) for n, v in per.items()} for r, per in image_minima(table).items()}


def _curve_table(curves: dict[int, dict[str, Curve]], *, kind: str) -> pa.Table:
    """Long form for notebooks: run, curve, budget, images counted, share and its Wilson interval."""
    cols: dict[str, list[Any]] = {k: [] for k in ("run_id", "curve", "budget", "count", "images", "share", "lo", "hi")}
    for run_id, per in curves.items():
        for name, c in per.items():
            lo, hi = c.band()
            m = len(c.x)
            cols["run_id"] += [run_id] * m
            cols["curve"] += [f"{kind}_{name}"] * m
            cols["budget"] += c.x.astype(np.float64).tolist()
            cols["count"] += c.count.tolist()
            cols["images"] += [c.n] * m
            cols["share"] += c.share.tolist()
            cols["lo"] += lo.tolist()
            cols["hi"] += hi.tolist()
    return pa.table(cols)


# --- budgets the tables show ----------------------------------------------------------------------


def iteration_budgets(T: int) -> list[int]:
    """A handful of iteration budgets: 1-2-5 steps near a tenth and a third of T, and T."""
    ladder = [k for k in ITERATION_LADDER if k < T]
    picks = [max((k for k in ladder if k <= T * f), default=None) for f in (0.1, 0.33)]
    return sorted({k for k in picks if k} | {T})


def eps_label(norm: str, eps: float) -> str:
    if norm == "linf" and eps > 0:
        frac = Fraction(eps * 255).limit_denominator(4)
        if abs(float(frac) - eps * 255) < 1e-9:
            return f"{frac}/255"
    return f"{eps:g}"


def eps_budgets(norm: str, minima: Sequence[np.ndarray], *, count: int = 3) -> list[float]:
    """Up to ``count`` ε values of the norm's ladder, near the quartiles of the pooled smallest
    successful perturbations (so the table shows where the curves rise)."""
    pooled = np.concatenate([np.asarray(v, dtype=np.float64) for v in minima]) if minima else np.array([])
    pooled = pooled[np.isfinite(pooled)]
    if not len(pooled):
        return []
    ladder = np.asarray(EPS_LADDER[norm])
    picks = []
    for q in QUANTILES[:count]:
        target = float(np.quantile(pooled, q))
        picks.append(float(ladder[np.argmin(np.abs(np.log(ladder) - np.log(max(target, 1e-12))))]))
    return sorted(set(picks))


def _rate(count: int, n: int) -> str:
    """``45% [30%, 60%]``: a share and its Wilson interval, as the other reports write it."""
    if not n:
        return "–"
    lo, hi = wilson(np.array([count]), n)
    return f"{count / n:.0%} [{lo[0]:.0%}, {hi[0]:.0%}]"


# --- report curves --------------------------------------------------------------------------------


@dataclass
class CurveData:
    """What report curves draws from: per run its iteration and ε curves, and its stored files."""

    selection: RunSelection
    iterations: dict[int, dict[str, Curve]]
    epsilons: dict[int, dict[str, Curve]]
    minima: dict[int, dict[str, np.ndarray]]
    stored: dict[int, dict[str, Any]]
    tables: dict[str, pa.Table]


def _query(session: QuerySession, name: str, **params: Any) -> pa.Table:
    return session.query(sql_text(name), params or None)


def curve_data(session: QuerySession, selection: RunSelection) -> CurveData:
    """Query and compute the curves of the selection's runs."""
    ids = selection.ids()
    its = _query(session, "curves_iterations", runs=ids)
    images = _query(session, "curves_images", runs=ids)
    stored = _query(session, "curves_stored", runs=ids)
    iterations, minima = iteration_curves(its), image_minima(images)
    epsilons = {r: {n: epsilon_curve(v) for n, v in per.items()} for r, per in minima.items()}
    tables = {
        "curves_iterations": its,
        "curves_images": images,
        "curves_stored": stored,
        "curves_epsilon": _curve_table(epsilons, kind="eps"),
    }
    return CurveData(selection, iterations, epsilons, minima, {r["run_id"]: r for r in stored.to_pylist()}, tables)


def _stored_cell(stored: dict[str, Any] | None) -> str:
    if not stored or not stored["files"]:
        return "–"
    return f"{_rate(stored['files_at_target'], stored['files'])} ({stored['formats']})"


def _curves_display(data: CurveData) -> tuple[list[str], list[list[str]]]:
    sel = data.selection
    T = max((int(c["reached"].x[-1]) for c in data.iterations.values()), default=0)
    ks = iteration_budgets(T)
    eps = {n: eps_budgets(n, [m[n] for m in data.minima.values()], count=2 if n == "l1" else 3) for n in NORMS}
    cols = ["Mode", "Source"] + [f"reached by k={k}" for k in ks] + ["at target at T", "stored files at T"]
    cols += [f"{NORM_ASCII[n]} <= {eps_label(n, e)}" for n in NORMS for e in eps[n]]
    rows = []
    for mode in MODES:
        for loss, run_id in sel.by_mode(mode).items():
            it, ep = data.iterations.get(run_id), data.epsilons.get(run_id)
            if it is None or ep is None:
                continue
            reached, at = it["reached"], it["at_target"]
            line = [MODE_LABELS[mode], source_label(loss)] + [_rate(reached.at(k), reached.n) for k in ks]
            line += [_rate(int(at.count[-1]), at.n), _stored_cell(data.stored.get(run_id))]
            line += [_rate(ep[n].at(e), ep[n].n) for n in NORMS for e in eps[n]]
            rows.append(line)
    return cols, rows


def _stored_notes(stored: dict[int, dict[str, Any]], labels: dict[int, str]) -> list[str]:
    """A note per run whose stored files are at the target less (or more) often than the images it returned."""
    notes = []
    for run_id, label in labels.items():
        s = stored.get(run_id)
        if not s or not s["files"] or s["files_at_target"] * s["images"] == s["returned_at_target"] * s["files"]:
            continue
        notes.append(
            f"{label}: {s['returned_at_target'] / s['images']:.1%} of the images it returned are at the target "
            f"as floats, {s['files_at_target'] / s['files']:.1%} of its stored {s['formats']} files still are"
        )
    return notes


def _selection_labels(sel: RunSelection) -> dict[int, str]:
    return {
        run_id: f"{source_label(loss)} · {MODE_LABELS.get(mode, mode)} (run {run_id})"
        for (loss, mode), run_id in sorted(sel.runs.items(), key=lambda kv: kv[1])
    }


def resampled(c: Curve, points: int = 250) -> Curve:
    """``c`` at no more than ``points`` budgets, evenly spaced to its last one (for drawing: a figure
    of eight runs' thousands of steps each takes seconds to draw and looks the same)."""
    if len(c.x) <= points:
        return c
    x = np.linspace(float(c.x[0]), float(c.x[-1]), points)
    i = np.searchsorted(c.x, x, side="right") - 1
    return Curve(x, c.count[i], c.n)


def _band(ax: Any, c: Curve, color: str, label: str | None, *, ls: str = "-", alpha: float = 0.15) -> None:
    c = resampled(c)
    lo, hi = c.band()
    ax.step(c.x, c.share, where="post", color=color, ls=ls, lw=1.2, label=label)
    ax.fill_between(c.x, lo, hi, step="post", color=color, alpha=alpha, lw=0)


def _curves_figure(data: CurveData) -> Any:
    modes = [m for m in MODES if data.selection.by_mode(m)]
    plt = _plt()
    fig, axes = plt.subplots(len(modes), 4, figsize=(13, 3.1 * len(modes)), squeeze=False)
    for row, mode in zip(axes, modes, strict=True):
        for loss, run_id in data.selection.by_mode(mode).items():
            it, ep = data.iterations.get(run_id), data.epsilons.get(run_id)
            if it is None or ep is None:
                continue
            _band(row[0], it["reached"], color_of(loss), f"{source_label(loss)}: reached by k")
            at = resampled(it["at_target"])
            row[0].step(at.x, at.share, where="post", color=color_of(loss), ls="--", lw=0.8)
            for ax, norm in zip(row[1:], NORMS, strict=True):
                _band(ax, ep[norm], color_of(loss), source_label(loss))
        row[0].plot([], [], color="grey", ls="--", lw=1.2, label="at the target at k")
        row[0].set(title=f"{MODE_LABELS[mode]} · iteration budget", xlabel="iteration k", ylim=(0, 1.02))
        row[0].set_ylabel("share of images")
        row[0].legend(fontsize=6, loc="lower right")
        for ax, norm in zip(row[1:], NORMS, strict=True):
            ax.set(
                title=f"{MODE_LABELS[mode]} · {NORM_LABELS[norm]} budget",
                xlabel=f"ε ({NORM_LABELS[norm]} of $x_n - x_0$)",
                ylim=(0, 1.02),
            )
        row[1].legend(fontsize=6, loc="lower right")
    _fixed_layout(fig, 3.1 * len(modes))
    return fig


def _fixed_layout(fig: Any, height: float, *, bottom: float = 0.55) -> None:
    """Margins in inches, set once: tight_layout lays every tick label out to measure it, which
    costs half a second for eight panels (the curve reports stay under a second at 10 M rows)."""
    fig.subplots_adjust(
        left=0.05, right=0.99, wspace=0.22, bottom=bottom / height, top=1 - 0.3 / height, hspace=0.85 / 3.1
    )


def curves_report(session: QuerySession, selection: RunSelection) -> tuple[dict[str, pa.Table], Any, Any, list[str]]:
    """Report ``curves``: (data, display table, figure, notes) for :class:`advdb.analytics.reports.ReportOutput`."""
    if not selection.ids():
        selection.require("equal-perturbation", "curves")
    data = curve_data(session, selection)
    notes = [
        "reached by k: first at the target at an iteration ≤ k (it rises to the success rate at T); "
        "at target at T: classified as the target at the last iteration (an image can leave it again)",
        EPS_NOTE,
        FLOAT_NOTE,
        *_stored_notes(data.stored, _selection_labels(selection)),
    ]
    notes += [f"missing: {cmd}" for m in MODES if selection.by_mode(m) for cmd in selection.missing(m)]
    return data.tables, _curves_display(data), _curves_figure(data), notes


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8, "figure.dpi": 150})
    return plt


# --- report robustness: the worst case over attacks -------------------------------------------


def run_label(run: dict[str, Any]) -> str:
    """``CE-sign · equal perturbation (run 3)``, ``CW-L2 (run 9)``."""
    if run.get("loss") and run.get("mode"):
        what = f"{source_label(run['loss'])} · {MODE_LABELS.get(run['mode'], run['mode'])}"
    else:
        what = ATTACK_LABELS.get(run["attack"], run["attack"])
    return f"{what} (run {run['run_id']})"


def robustness_runs(session: QuerySession, selection: RunSelection | None, runs: list[int] | None = None) -> list[dict]:
    """The runs the worst case is taken over: ``runs`` if given, else the selection's unified runs
    and the newest full attack (IFGS, CW, L-BFGS) of each kind on the same classifier and dataset.
    Runs on different classifiers or datasets are a ConfigError."""
    catalogue = {r["run_id"]: r for r in _query(session, "runs_catalogue").to_pylist()}
    if runs:
        unknown = [r for r in runs if r not in catalogue]
        if unknown:
            raise MissingDataError(f"run {unknown[0]} is not a finished attack run: see `advdb runs list`")
        chosen = [catalogue[r] for r in dict.fromkeys(runs)]
    else:
        ids = selection.ids() if selection is not None else []
        if not ids:
            raise MissingDataError(
                "robustness needs attack runs on one classifier: run advdb attack --loss ce-sign; "
                "advdb attack --attack cw; advdb attack --attack ifgs"
            )
        first = catalogue[ids[0]]
        full = _query(
            session,
            "robustness_runs",
            classifier_id=first["classifier_id"],
            dataset_id=first["dataset_id"],
            attacks=list(FULL_ATTACKS),
        ).to_pylist()
        chosen = [catalogue[r] for r in ids] + [catalogue[r["run_id"]] for r in full if r["run_id"] not in ids]
    attacked = {(r["classifier_id"], r["dataset_id"]) for r in chosen}
    if len(attacked) > 1:
        listed = "; ".join(f"run {r['run_id']}: {r['classifier']} on {r['dataset']}" for r in chosen)
        raise ConfigError(
            f"the worst case over attacks needs runs that attacked the same images of one classifier ({listed}): "
            "name runs of one classifier and dataset with --runs"
        )
    return chosen


@dataclass
class Robustness:
    """Per image (rows) and run (columns): first iteration at the target and smallest successful
    perturbation per norm (inf: never); the union is the minimum over the runs."""

    runs: list[dict]
    image_ids: np.ndarray
    first: np.ndarray  # [images, runs]
    minima: dict[str, np.ndarray]  # norm → [images, runs]
    targets_differ: int
    table: pa.Table

    @property
    def budget(self) -> int:
        return max(int(r["iterations"] or 0) for r in self.runs)

    def broken_by_iterations(self, j: int | None = None) -> Curve:
        """Images broken within k iterations by run ``j`` (None: by any run), k = 0 … budget."""
        v = self.first.min(1) if j is None else self.first[:, j]
        ks = np.arange(self.budget + 1)
        return Curve(ks, np.searchsorted(np.sort(v), ks, side="right"), len(v))

    def broken_by_eps(self, norm: str, j: int | None = None) -> Curve:
        m = self.minima[norm]
        return epsilon_curve(m.min(1) if j is None else m[:, j])

    def first_to_break(self) -> tuple[np.ndarray, np.ndarray]:
        """Per run: the images it broke at the smallest iteration of all runs (ties count for each),
        and the images no other run broke."""
        best = self.first.min(1, keepdims=True)
        broken = np.isfinite(self.first)
        first = (broken & (self.first == best)).sum(0)
        alone = (broken & (broken.sum(1, keepdims=True) == 1)).sum(0)
        return first, alone


def robustness_data(session: QuerySession, runs: list[dict]) -> Robustness:
    ids = [r["run_id"] for r in runs]
    table = _query(session, "robustness", runs=ids)
    image_ids = np.unique(_column(table, "image_id", np.int64))
    if not len(image_ids):
        raise MissingDataError(
            f"runs {', '.join(map(str, ids))} attacked no image in common: the worst case over attacks compares "
            "runs of the same images (the same --n and --seed)"
        )
    i = np.searchsorted(image_ids, _column(table, "image_id", np.int64))
    j = np.searchsorted(np.sort(ids), _column(table, "run_id", np.int64))
    j = np.argsort(ids)[j]  # the column of each row's run, in the order of ``runs``
    shape = (len(image_ids), len(ids))
    first = np.full(shape, np.inf)
    first[i, j] = np.nan_to_num(_column(table, "first_success_iter", np.float64), nan=np.inf)
    minima = {n: np.full(shape, np.inf) for n in NORMS}
    for n in NORMS:
        minima[n][i, j] = np.nan_to_num(_column(table, f"min_{n}", np.float64), nan=np.inf)
    targets = np.zeros(shape, dtype=np.int64)
    targets[i, j] = _column(table, "target", np.int64)
    differ = int((targets != targets[:, :1]).any(1).sum())
    return Robustness(runs, image_ids, first, minima, differ, table)


def _column(table: pa.Table, name: str, dtype: Any) -> np.ndarray:
    """A column as numpy (NULL as NaN for floats)."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)


def _robust(c: Curve) -> Curve:
    """Robust accuracy: the images *not* broken."""
    return Curve(c.x, c.n - c.count, c.n)


def robustness_budgets(budgets: Sequence[int]) -> list[int]:
    """Iteration budgets for runs of different lengths: near a tenth of and at the shortest and the longest."""
    lo, hi = min(budgets), max(budgets)
    if lo == hi:
        return iteration_budgets(hi)
    return sorted({*iteration_budgets(lo)[:1], lo, *iteration_budgets(hi)[:1], hi} - {0})


def _robustness_display(rob: Robustness) -> tuple[list[str], list[list[str]]]:
    ks = robustness_budgets([int(r["iterations"] or 0) for r in rob.runs])
    eps = {n: eps_budgets(n, [rob.minima[n].min(1)]) for n in ("linf", "l2")}
    cols = ["Attack", "images"] + [f"k={k}" for k in ks] + ["all iterations"]
    cols += [f"{NORM_ASCII[n]} <= {eps_label(n, e)}" for n in eps for e in eps[n]] + ["first to break", "alone"]
    first, alone = rob.first_to_break()
    rows = []
    for j in [*range(len(rob.runs)), None]:
        it = _robust(rob.broken_by_iterations(j))
        line = ["any (worst case)" if j is None else run_label(rob.runs[j]), f"{it.n:,}"]
        line += [_rate(it.at(k), it.n) for k in ks] + [_rate(int(it.count[-1]), it.n)]
        for n in eps:
            c = _robust(rob.broken_by_eps(n, j))
            line += [_rate(c.at(e), c.n) for e in eps[n]]
        broken = int(np.isfinite(rob.first.min(1)).sum())
        line += [str(broken), "–"] if j is None else [str(first[j]), str(alone[j])]
        rows.append(line)
    return cols, rows


def _robustness_figure(rob: Robustness) -> Any:
    """Robust accuracy against each budget: each run alone (thin), the worst case over them (black,
    with its Wilson band)."""
    plt = _plt()
    height = 3.4 + 0.16 * ((len(rob.runs) + 1 + 3) // 4)
    fig, axes = plt.subplots(1, 4, figsize=(13, height))
    for j in [*range(len(rob.runs)), None]:
        label = "any (worst case)" if j is None else run_label(rob.runs[j])
        curves = [rob.broken_by_iterations(j), *(rob.broken_by_eps(n, j) for n in NORMS)]
        for ax, c in zip(axes, curves, strict=True):
            if j is None:
                _band(ax, _robust(c), "k", label)
                ax.lines[-1].set_linewidth(2.0)
            else:
                r = resampled(_robust(c))
                ax.step(r.x, r.share, where="post", color=f"C{j % 10}", lw=0.9, label=label)
    budgets = [int(r["iterations"] or 1) for r in rob.runs]
    if max(budgets) > 8 * min(budgets):
        axes[0].set_xscale("symlog", linthresh=1)
    axes[0].set(title="robust accuracy: iteration budget", xlabel="iteration k (model evaluations)", ylim=(0, 1.02))
    axes[0].set_ylabel("share of images not at the target")
    for ax, norm in zip(axes[1:], NORMS, strict=True):
        ax.set(title=f"robust accuracy: {NORM_LABELS[norm]} budget", xlabel=f"ε ({NORM_LABELS[norm]})", ylim=(0, 1.02))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=6, frameon=False)
    _fixed_layout(fig, height, bottom=height - 3.4 + 0.55)
    return fig


def _robustness_tables(rob: Robustness) -> dict[str, pa.Table]:
    per: dict[int, dict[str, Curve]] = {}
    for j in [*range(len(rob.runs)), None]:
        key = 0 if j is None else rob.runs[j]["run_id"]
        per[key] = {"iterations": _robust(rob.broken_by_iterations(j))}
        per[key].update({n: _robust(rob.broken_by_eps(n, j)) for n in NORMS})
    first, alone = rob.first_to_break()
    counts = pa.table(
        {
            "run_id": [r["run_id"] for r in rob.runs],
            "attack": [run_label(r) for r in rob.runs],
            "first_to_break": first.tolist(),
            "alone": alone.tolist(),
        }
    )
    return {"robustness": rob.table, "robustness_curves": _curve_table(per, kind="robust"), "robustness_first": counts}


def robustness_report(
    session: QuerySession, selection: RunSelection | None, runs: list[int] | None = None
) -> tuple[dict[str, pa.Table], Any, Any, list[str]]:
    """Report ``robustness`` over ``runs`` (default: :func:`robustness_runs`): (data, display, figure, notes)."""
    chosen = robustness_runs(session, selection, runs)
    rob = robustness_data(session, chosen)
    notes = [
        f"robust accuracy: the share of the {len(rob.image_ids):,} images attacked by every run (each correctly "
        "classified before the attack) that a run did not bring to its target within the budget; any: no run did "
        "(the worst case over attacks, as AutoAttack reports it), from the stored trajectories",
        "k: recorded model evaluations (for CW and L-BFGS across their search over c); ε: the smallest "
        "‖xₙ − x₀‖ at which a run had the image at its target, on the float trajectory (an upper bound on the "
        "minimal adversarial perturbation); L1 in the figure and the data",
        "first to break: images the run brought to the target at the smallest iteration of all runs (ties count "
        "for each); alone: images no other run brought to its target",
    ]
    if rob.targets_differ:
        notes.append(f"{rob.targets_differ} images had different targets in different runs: any target counts")
    if len(chosen) == 1:
        notes.append("one run only: add others (advdb attack --attack cw, --attack ifgs) for a worst case")
    stored = {r["run_id"]: r for r in _query(session, "curves_stored", runs=[r["run_id"] for r in chosen]).to_pylist()}
    notes += _stored_notes(stored, {r["run_id"]: run_label(r) for r in chosen})
    return _robustness_tables(rob), _robustness_display(rob), _robustness_figure(rob), notes


# --- what the curves add, in words ----------------------------------------------------------------


def _share(c: Curve, k: float) -> float:
    return c.at(k) / c.n if c.n else float("nan")


def _overtake(a: Curve, b: Curve) -> str:
    """How curve ``a`` (CE-sign's) compares with ``b`` (CE's) over the iteration budgets."""
    ks = np.union1d(a.x, b.x)
    ks = ks[ks >= 1]
    d = np.array([_share(a, k) - _share(b, k) for k in ks])
    T = int(ks[-1])
    end = f"{_share(a, T):.0%} vs {_share(b, T):.0%} at T = {T}"
    ahead = np.nonzero(d > 0)[0]
    if not len(ahead):
        return f"never gets ahead of CE ({end})"
    behind_later = np.nonzero(d < 0)[0]
    start = ahead[0] if not len(behind_later) else next((i for i in ahead if i > behind_later[-1]), None)
    if start is None:
        return f"leads CE from k = {int(ks[ahead[0]])} but CE is ahead from k = {int(ks[behind_later[-1]])} ({end})"
    k = int(ks[start])
    return f"is ahead of CE from k = {k} on ({_share(a, k):.1%} vs {_share(b, k):.1%} there, {end})"


def _fmt_eps(v: float) -> str:
    return "never" if not np.isfinite(v) else f"{v:.3g}"


def curve_summary(session: QuerySession, selection: RunSelection) -> list[str]:
    """What the curves add, in one or two sentences: under each mode, from which iteration budget
    CE-sign has more images at the target than CE, and the L∞ / L2 perturbation within which
    each source brings half the images to their target."""
    if not selection.ids():
        return []
    data = curve_data(session, selection)
    out = []
    parts = []
    for mode in MODES:
        runs = selection.by_mode(mode)
        if "ce" in runs and "ce-sign" in runs and runs["ce"] in data.iterations and runs["ce-sign"] in data.iterations:
            a, b = data.iterations[runs["ce-sign"]]["reached"], data.iterations[runs["ce"]]["reached"]
            parts.append(f"under {MODE_LABELS[mode]} CE-sign {_overtake(a, b)}")
    if parts:
        out.append("Iteration budget (share of images at the target by iteration k): " + "; ".join(parts) + ".")
    halves = []
    for mode in MODES:
        cells = [
            f"{source_label(loss)} {_fmt_eps(data.epsilons[r]['linf'].reaches(0.5))} / "
            f"{_fmt_eps(data.epsilons[r]['l2'].reaches(0.5))}"
            for loss, r in selection.by_mode(mode).items()
            if r in data.epsilons
        ]
        if cells:
            halves.append(f"{MODE_LABELS[mode]}: {', '.join(cells)}")
    if halves:
        out.append(
            "Perturbation budget (L∞ / L2 of x − x₀ within which half the images were at their target along the "
            "attack's path): " + "; ".join(halves) + "."
        )
    return out
