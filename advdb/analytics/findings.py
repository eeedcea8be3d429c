"""The paper's six findings (Sections IV and V) and two it argues without measuring (Section V:
CE's images transfer less and break more easily), measured on the store and judged with statistics.

Every comparison carries a 95 % bootstrap interval (:mod:`advdb.analytics.statistics`):
sources are compared image by image on the images both attacked, detectors by their
held-out accuracies. A finding *agrees* when every comparison it makes agrees, *differs*
when one comparison lies wholly on the other side, and is *inconclusive* otherwise.

The findings are verdicts about the paper's four sources (and its full attacks): a source a
plugin adds (``dlr``) is listed with its values where a finding lists each source's, after the
paper's (:func:`~advdb.analytics.selection.order_names`), and takes part in no comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advdb.analytics import statistics as st
from advdb.analytics.query import QuerySession
from advdb.analytics.selection import RunSelection, order_names, select_runs
from advdb.analytics.sqlfiles import sql_text
from advdb.vocabulary import FULL_ATTACKS, SOURCES


@dataclass
class Finding:
    number: int
    claim: str
    measured: str
    verdict: str  # agrees | differs | inconclusive | no data
    comparisons: list[str] = field(default_factory=list)  # each with its interval and verdict


@dataclass
class _Images:
    """One mode's sources, column by column, on a common list of images (NaN where absent)."""

    columns: dict[str, dict[str, np.ndarray]]
    T: dict[str, int] = field(default_factory=dict)  # each source's iterations

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> _Images:
        ids = sorted({r["image_id"] for r in rows})
        where = {image_id: i for i, image_id in enumerate(ids)}
        names = ("iterations", "success_l2", "z_t_late", "z_t_end", "grad_first", "grad_last")
        columns: dict[str, dict[str, np.ndarray]] = {}
        for r in rows:
            cols = columns.setdefault(r["loss"], {n: np.full(len(ids), np.nan) for n in names})
            for n in names:
                cols[n][where[r["image_id"]]] = np.nan if r[n] is None else r[n]
        return cls(columns, {r["loss"]: int(r["T"]) for r in rows})

    def has(self, *losses: str) -> bool:
        return all(loss in self.columns for loss in losses)

    def losses(self) -> list[str]:
        """The sources present: the paper's four in its order, then any other by name."""
        return order_names(self.columns, SOURCES)

    def __getitem__(self, key: tuple[str, str]) -> np.ndarray:
        loss, column = key
        return self.columns[loss][column]


@dataclass
class _Measures:
    """What the findings are judged on: per mode, the sources' per-image values; per mode and
    source, its batches' seconds per image-iteration; the full attacks' costs; the detectors."""

    ep: _Images
    em: _Images
    seconds: dict[str, dict[str, np.ndarray]]  # mode → source → per batch
    attacks: dict[str, dict[str, Any]]
    detectors: list[dict[str, Any]]
    chance: dict[int, float] = field(default_factory=dict)  # per detector run: its majority class's share
    transfer: list[dict[str, Any]] = field(default_factory=list)  # per other model and image (findings_transfer)
    defenses: list[dict[str, Any]] = field(default_factory=list)  # per transform and image (findings_defenses)


def _compare(label: str, estimate: st.Estimate, verdict: str, digits: int = 1) -> tuple[str, str]:
    return f"{label}: {estimate.format(digits)} ({verdict})", verdict


def measure_findings(session: QuerySession, selection: RunSelection | None = None) -> list[Finding]:
    """The paper's findings (Sections IV and V), each measured on the runs reports use."""
    sel = selection or select_runs(session)
    params = {"runs": sel.ids() or [-1]}
    images = session.query(sql_text("findings_images"), params).to_pylist()
    batches = session.query(sql_text("findings_batches"), params).to_pylist()
    m = _Measures(
        ep=_Images.from_rows([r for r in images if r["mode"] == "equal-perturbation"]),
        em=_Images.from_rows([r for r in images if r["mode"] == "equal-multiplier"]),
        seconds=_seconds_by_mode(batches),
        attacks={r["attack"]: r for r in session.query(sql_text("findings_attacks")).to_pylist()},
        detectors=[  # the detectors of the selection's classifier (a study may attack several)
            r for r in session.query(sql_text("table2")).to_pylist() if sel.classifier in (None, r["classifier"])
        ],
        chance={r["run_id"]: r["chance"] for r in session.query(sql_text("detector_chance")).to_pylist()},
        transfer=session.query(sql_text("findings_transfer"), params).to_pylist(),
        defenses=session.query(sql_text("findings_defenses"), params).to_pylist(),
    )
    judges = (
        _fewest_iterations,
        _ce_stalls,
        _ce_gradient_decays,
        _m_logit_vs_logit,
        _cost_per_iteration,
        _detectors,
        _ce_transfers_less,
        _ce_is_fragile,
    )
    return [judge(m) for judge in judges]


def _finding(number: int, claim: str, measured: str, compared: list[tuple[str, str]]) -> Finding:
    return Finding(number, claim, measured, st.combine([v for _, v in compared]), [c for c, _ in compared])


def _means(images: _Images, column: str, digits: int = 1, names: tuple[str, ...] | None = None) -> str:
    """Each source's mean of ``column`` (``names``, else every source present) with its interval."""
    return ", ".join(f"{loss} {st.mean(images[loss, column]).format(digits)}" for loss in names or images.losses())


def _fewest_iterations(m: _Measures) -> Finding:
    """1. Equal perturbation: CE needs the fewest iterations and the least perturbation; CE-sign the most."""
    claim = "Equal perturbation: CE needs the fewest iterations and the least perturbation; CE-sign the most iterations"
    ep = m.ep
    if not ep.has(*SOURCES):
        return Finding(1, claim, "needs the four equal-perturbation runs", st.NO_DATA)
    compared = []
    for other in ("ce-sign", "logit", "m-logit"):
        d = st.paired_difference(ep[other, "iterations"], ep["ce", "iterations"])
        compared.append(_compare(f"iterations {other} − ce", d, st.judge(d, above=0)))
        d = st.paired_difference(ep[other, "success_l2"], ep["ce", "success_l2"])
        compared.append(_compare(f"L2 {other} − ce", d, st.judge(d, above=0), 3))
    for other in ("logit", "m-logit"):
        d = st.paired_difference(ep["ce-sign", "iterations"], ep[other, "iterations"])
        compared.append(_compare(f"iterations ce-sign − {other}", d, st.judge(d, above=0)))
    measured = f"mean iterations: {_means(ep, 'iterations')}; mean L2 at success: {_means(ep, 'success_l2', 2)}"
    return _finding(1, claim, measured, compared)


def _ce_stalls(m: _Measures) -> Finding:
    """2. CE and CE-sign stall in S3 (z_t plateaus); the logit source keeps raising z_t."""
    claim = "CE and CE-sign stall once confident (z_t plateaus); the logit sources keep raising z_t"
    ep = m.ep
    if not ep.has(*SOURCES):
        return Finding(2, claim, "needs the four equal-perturbation runs", st.NO_DATA)
    gain = {loss: ep[loss, "z_t_end"] - ep[loss, "z_t_late"] for loss in ep.losses()}  # compared: the paper's
    compared = []
    for other in ("ce", "ce-sign"):
        d = st.paired_difference(gain["logit"], gain[other])
        compared.append(_compare(f"gain logit − {other}", d, st.judge(d, above=0), 2))
    measured = "z_t gain over the last 20% of iterations (equal perturbation): " + ", ".join(
        f"{loss} {st.mean(g).format(2)}" for loss, g in gain.items()
    )
    if st.mean(gain["m-logit"]).hi <= 1e-6:
        measured += " (m-logit stops once its margin κ is reached)"
    return _finding(2, claim, measured, compared)


def _ce_gradient_decays(m: _Measures) -> Finding:
    """3. The CE gradient decays as the optimisation proceeds (equal multiplier, Fig. 4)."""
    claim = "The CE gradient's magnitude decays as the optimisation proceeds (Fig. 4)"
    if not m.em.has("ce"):
        return Finding(3, claim, "needs the equal-multiplier CE run", st.NO_DATA)
    first, last = m.em["ce", "grad_first"], m.em["ce", "grad_last"]
    ratio = st.ratio_of_means(last, first)
    measured = (
        f"mean ‖∇CE‖ at iteration 0: {st.mean(first).format(3)}, at T: {st.mean(last).format(3)} "
        f"(ratio {ratio.format(3)})"
    )
    return _finding(3, claim, measured, [_compare("ratio at T / at 0", ratio, st.judge(ratio, below=1), 3)])


def _m_logit_vs_logit(m: _Measures) -> Finding:
    """4. M-logit needs more iterations than logit but less perturbation."""
    claim = "M-logit needs more iterations than logit (95 vs 80 in the paper) but less perturbation"
    ep = m.ep
    if not ep.has("logit", "m-logit"):
        return Finding(4, claim, "needs the logit and m-logit runs", st.NO_DATA)
    its = st.paired_difference(ep["m-logit", "iterations"], ep["logit", "iterations"])
    l2 = st.paired_difference(ep["m-logit", "success_l2"], ep["logit", "success_l2"])
    compared = [
        _compare("iterations m-logit − logit", its, st.judge(its, above=0)),
        _compare("L2 m-logit − logit", l2, st.judge(l2, below=0), 3),
    ]
    pair = ("m-logit", "logit")
    measured = f"iterations {_means(ep, 'iterations', names=pair)}; L2 at success {_means(ep, 'success_l2', 2, pair)}"
    return _finding(4, claim, measured, compared)


def _seconds_by_mode(batches: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Seconds per image-iteration of each batch, by mode and source (modes never pooled: an
    equal-perturbation step costs a norm more than an equal-multiplier one)."""
    out: dict[str, dict[str, list[float]]] = {}
    for b in batches:
        out.setdefault(b["mode"], {}).setdefault(b["loss"], []).append(b["seconds_per_image_iteration"])
    return {mode: {loss: np.array(v) for loss, v in by.items()} for mode, by in out.items()}


def _cost_per_iteration(m: _Measures) -> Finding:
    """5. M-logit's time per iteration is close to the others'; CW is slow because of its search.

    The sources are compared within one mode at a time (each mode with its four runs), on
    timings that exclude warm-up (compilation, autotuning: :func:`advdb.execution.warm_up`).
    """
    claim = "M-logit costs about the same per iteration as the others; CW is slow because of its search"
    modes = [mode for mode in MODE_SHORT if set(m.seconds.get(mode, {})) >= set(SOURCES)]
    if not modes:
        return Finding(5, claim, "needs the four runs of one mode", st.NO_DATA)
    compared, parts = [], []
    for mode in modes:
        seconds = {loss: m.seconds[mode][loss] for loss in order_names(m.seconds[mode], SOURCES)}
        others = np.concatenate([seconds[k] for k in SOURCES if k != "m-logit"])  # the paper's three others
        ratio = st.ratio_of_independent_means(seconds["m-logit"], others)  # batches do not pair across sources
        label = f"time per iteration m-logit / others ({MODE_SHORT[mode]}, batches)"
        compared.append(_compare(label, ratio, st.judge(ratio, below=1.25), 2))
        ms = ", ".join(f"{k} {v.mean() * 1e3:.3f}" for k, v in seconds.items())
        parts.append(f"ms per image-iteration ({MODE_SHORT[mode]}): {ms}")
    measured = "; ".join(parts)
    cw = m.attacks.get("cw")
    if cw is not None and m.ep.T.get("m-logit"):
        unified_evals = m.ep.T["m-logit"] + 1
        measured += (
            f"; CW spends {cw['evaluations_per_image']:.0f} model evaluations per image "
            f"({cw['seconds_per_image']:.3f} s) vs {unified_evals} for the m-logit source"
        )
        slower = st.AGREES if cw["evaluations_per_image"] > unified_evals else st.DIFFERS
        compared.append((f"CW evaluations per image {cw['evaluations_per_image']:.0f} (exact) ({slower})", slower))
    return _finding(5, claim, measured, compared)


def _detectors(m: _Measures) -> Finding:
    """6. Detectors separate genuine from adversarial images; CE-sign is the easiest to detect."""
    claim = "Detectors separate genuine from adversarial images; CE-sign is the easiest to detect"
    if not m.detectors:
        return Finding(6, claim, "needs single-source detector runs", st.NO_DATA)
    by_arch: dict[str, dict[str, tuple[float, int]]] = {}
    chance: dict[tuple[str, str], float] = {}
    for r in m.detectors:
        by_arch.setdefault(r["arch"], {})[r["source"]] = (float(r["accuracy"]), int(r["n_images"]))
        chance[r["arch"], r["source"]] = m.chance.get(r["run_id"], 0.5)
    parts, compared = [], []
    paper = (*SOURCES, *FULL_ATTACKS)  # judged; any other source or attack is listed only
    for arch, accs in by_arch.items():
        listed = order_names(accs, paper)
        parts.append(f"{arch}: " + ", ".join(f"{k} {st.proportion(*accs[k]).format(percent=True)}" for k in listed))
        judged = {k: accs[k] for k in listed if k in paper}
        for source, (p, n) in judged.items():
            e, level = st.proportion(p, n), chance[arch, source]
            compared.append(_compare(f"{arch} {source} above chance ({level:.0%})", e, st.judge(e, above=level), 2))
        for other, (p, n) in judged.items():
            if "ce-sign" in accs and other != "ce-sign":
                d = st.proportion_difference(*accs["ce-sign"], p, n)
                compared.append(_compare(f"{arch} ce-sign − {other}", d, st.judge(d, above=0), 2))
    return _finding(6, claim, "; ".join(parts), compared)


MODE_SHORT = {"equal-perturbation": "equal perturbation", "equal-multiplier": "equal multiplier"}


def _by_image(rows: list[dict[str, Any]], group: str, value: str) -> dict[str, dict[str, np.ndarray]]:
    """Rows as "group, mode" → source → ``value`` per image (aligned on the images of that group
    and mode, NaN where a source has none)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for g, mode in dict.fromkeys((r[group], r["mode"]) for r in rows):
        mine = [r for r in rows if r[group] == g and r["mode"] == mode]
        where = {image_id: i for i, image_id in enumerate(sorted({r["image_id"] for r in mine}))}
        cols: dict[str, np.ndarray] = {}
        for r in mine:
            cols.setdefault(r["loss"], np.full(len(where), np.nan))[where[r["image_id"]]] = r[value]
        out[f"{g}, {MODE_SHORT.get(mode, mode)}"] = {loss: cols[loss] for loss in order_names(cols, SOURCES)}
    return out


def _ce_below_logit_sources(per_group: dict[str, dict[str, np.ndarray]], what: str) -> tuple[str, list]:
    """What was measured per group (each source's mean) and the paired comparisons logit/m-logit − CE."""
    parts, compared = [], []
    for g, cols in per_group.items():
        parts.append(f"{g}: " + ", ".join(f"{k} {st.mean(v).format(percent=True)}" for k, v in cols.items()))
        for other in ("logit", "m-logit"):
            if "ce" in cols and other in cols:
                d = st.paired_difference(cols[other], cols["ce"])
                compared.append(_compare(f"{g} {what} {other} − ce", d, st.judge(d, above=0), 3))
    return "; ".join(parts), compared


def _ce_transfers_less(m: _Measures) -> Finding:
    """7. CE's adversarial images transfer less to other classifiers than the logit sources' (Section V)."""
    claim = "Beyond the paper (Section V's argument): CE's images transfer less to other models than the logit sources'"
    measured, compared = _ce_below_logit_sources(_by_image(m.transfer, "model", "targeted"), "targeted transfer")
    if not compared:
        return Finding(7, claim, "needs `advdb transfer` runs of the ce and logit runs", st.NO_DATA)
    return _finding(7, claim, "targeted transfer onto " + measured, compared)


def _ce_is_fragile(m: _Measures) -> Finding:
    """8. CE's adversarial images break more easily under input transformations than the logit sources'."""
    claim = "Beyond the paper (Section V's argument): CE's images break more easily under input transformations"
    measured, compared = _ce_below_logit_sources(_by_image(m.defenses, "transform", "survival"), "survival")
    if not compared:
        return Finding(8, claim, "needs `advdb defend` runs of the ce and logit runs", st.NO_DATA)
    return _finding(8, claim, "share of the swept strengths each image survives: " + measured, compared)
