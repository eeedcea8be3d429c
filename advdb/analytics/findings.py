"""The paper's six findings (Sections IV and V), measured on the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advdb.analytics.query import QuerySession
from advdb.analytics.selection import RunSelection, select_runs
from advdb.analytics.sqlfiles import sql_text


@dataclass
class Finding:
    number: int
    claim: str
    measured: str
    agrees: bool | None  # None: no data to tell


def _num(v: float | None) -> float:
    """A mean over no image (nothing reached the target) counts as infinitely slow/large."""
    return float("inf") if v is None else float(v)


def _fmt(d: dict[str, float], digits: int = 1) -> str:
    return ", ".join(f"{k} {v:.{digits}f}" for k, v in d.items())


@dataclass
class _Measures:
    """What the findings are judged on: per source, its equal-perturbation (``ep``) and
    equal-multiplier (``em``) run; per full attack, its costs; the single-source detectors."""

    ep: dict[str, dict[str, Any]]
    em: dict[str, dict[str, Any]]
    attacks: dict[str, dict[str, Any]]
    detectors: list[dict[str, Any]]


def measure_findings(session: QuerySession, selection: RunSelection | None = None) -> list[Finding]:
    """The paper's six findings (Sections IV and V), each measured on the runs reports use."""
    sel = selection or select_runs(session)
    rows = session.query(sql_text("findings_sources"), {"runs": sel.ids() or [-1]}).to_pylist()
    m = _Measures(
        ep={r["loss"]: r for r in rows if r["mode"] == "equal-perturbation"},
        em={r["loss"]: r for r in rows if r["mode"] == "equal-multiplier"},
        attacks={r["attack"]: r for r in session.query(sql_text("findings_attacks")).to_pylist()},
        detectors=session.query(sql_text("table2")).to_pylist(),
    )
    return [
        judge(m)
        for judge in (
            _fewest_iterations,
            _ce_stalls,
            _ce_gradient_decays,
            _m_logit_vs_logit,
            _cost_per_iteration,
            _detectors,
        )
    ]


def _fewest_iterations(m: _Measures) -> Finding:
    """1. Equal perturbation: CE needs the fewest iterations and the least perturbation; CE-sign the most."""
    ep = m.ep
    if len(ep) == 4:
        its = {k: _num(v["iterations"]) for k, v in ep.items()}
        l2 = {k: _num(v["success_l2"]) for k, v in ep.items()}
        ok = min(its, key=its.__getitem__) == "ce" and max(its, key=its.__getitem__) == "ce-sign"
        ok = ok and min(l2, key=l2.__getitem__) == "ce"
        return Finding(
            1,
            "Equal perturbation: CE needs the fewest iterations and the least perturbation; CE-sign the most "
            "iterations",
            f"mean iterations: {_fmt(its)}; mean L2 at success: {_fmt(l2, 2)}",
            ok,
        )
    return Finding(1, "Equal perturbation: CE fastest, CE-sign slowest", "needs the four equal-perturbation runs", None)


def _ce_stalls(m: _Measures) -> Finding:
    """2. CE and CE-sign stall in S3 (z_t plateaus); logit and m-logit keep raising z_t."""
    ep = m.ep
    if len(ep) == 4:
        gain = {k: _num(v["z_t_end"]) - _num(v["z_t_late"]) for k, v in ep.items()}
        ok = gain["logit"] > max(gain["ce"], gain["ce-sign"]) and gain["m-logit"] >= 0
        return Finding(
            2,
            "CE and CE-sign stall once confident (z_t plateaus); the logit sources keep raising z_t",
            f"z_t gain over the last 20% of iterations (equal perturbation): {_fmt(gain, 2)}",
            ok,
        )
    return Finding(2, "CE and CE-sign stall in S3", "needs the four equal-perturbation runs", None)


def _ce_gradient_decays(m: _Measures) -> Finding:
    """3. The CE gradient decays as the optimisation proceeds (equal multiplier, Fig. 4)."""
    ce = m.em.get("ce")
    if ce is not None and ce["grad_first"]:
        ratio = ce["grad_last"] / ce["grad_first"]
        return Finding(
            3,
            "The CE gradient's magnitude decays as the optimisation proceeds (Fig. 4)",
            f"mean ‖∇CE‖ at iteration 0: {ce['grad_first']:.3g}, at T: {ce['grad_last']:.3g} (ratio {ratio:.2g})",
            ratio < 0.1,
        )
    return Finding(3, "The CE gradient decays", "needs the equal-multiplier CE run", None)


def _m_logit_vs_logit(m: _Measures) -> Finding:
    """4. M-logit needs more iterations than logit but less perturbation."""
    ep = m.ep
    if "logit" in ep and "m-logit" in ep:
        (ai, al), (bi, bl) = ((_num(r["iterations"]), _num(r["success_l2"])) for r in (ep["m-logit"], ep["logit"]))
        ok = ai > bi and al < bl
        return Finding(
            4,
            "M-logit needs more iterations than logit (95 vs 80 in the paper) but less perturbation",
            f"iterations m-logit {ai:.1f} vs logit {bi:.1f}; L2 at success m-logit {al:.2f} vs logit {bl:.2f}",
            ok,
        )
    return Finding(4, "M-logit slower than logit but smaller", "needs the logit and m-logit runs", None)


def _cost_per_iteration(m: _Measures) -> Finding:
    """5. M-logit's time per iteration is close to the others'; CW is slow because of its search."""
    ep = m.ep
    if len(ep) == 4:
        per_it = {k: v["seconds_per_image_iteration"] * 1e3 for k, v in ep.items()}
        others = [v for k, v in per_it.items() if k != "m-logit"]
        close = per_it["m-logit"] <= 1.25 * (sum(others) / len(others))
        cw = m.attacks.get("cw")
        text = f"ms per image-iteration: {_fmt(per_it, 3)}"
        if cw is not None:
            T = ep["m-logit"]["T"]
            text += (
                f"; CW spends {cw['evaluations_per_image']:.0f} model evaluations per image "
                f"({cw['seconds_per_image']:.3f} s) vs {T + 1} for the m-logit source"
            )
            close = close and cw["evaluations_per_image"] > T + 1
        return Finding(
            5,
            "M-logit costs about the same per iteration as the others; CW is slow because of its search",
            text,
            close,
        )
    return Finding(5, "M-logit's time per iteration", "needs the four equal-perturbation runs", None)


def _detectors(m: _Measures) -> Finding:
    """6. Detectors separate genuine from adversarial images; CE-sign is the easiest to detect."""
    t2 = m.detectors
    if t2:
        by_arch: dict[str, dict[str, float]] = {}
        for r in t2:
            by_arch.setdefault(r["arch"], {})[r["source"]] = r["accuracy"]
        parts, ok = [], True
        for arch, accs in by_arch.items():
            parts.append(f"{arch}: " + ", ".join(f"{k} {v:.0%}" for k, v in accs.items()))
            if "ce-sign" in accs and len(accs) > 1:
                ok = ok and accs["ce-sign"] >= max(accs.values())
        return Finding(
            6,
            "Detectors separate genuine from adversarial images; CE-sign is the easiest to detect",
            "; ".join(parts),
            ok,
        )
    return Finding(6, "Detectors; CE-sign easiest to detect", "needs single-source detector runs", None)
