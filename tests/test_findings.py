"""Findings judged with statistics: each verdict (agrees, differs, inconclusive) comes out
when the data say so, and only then."""

from __future__ import annotations

import numpy as np
import pytest

from advdb.analytics import findings as fd
from advdb.analytics import statistics as st
from advdb.vocabulary import SOURCES


def _images(
    means: dict[str, tuple[float, float]], *, n: int = 400, spread: float = 10.0, l2_spread: float = 0.05, seed: int = 0
) -> fd._Images:
    """Per source: iterations and L2 around the given means, image by image (a shared per-image
    difficulty plus noise, as when the sources attack the same images)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, spread, n)
    rows = []
    for loss, (iterations, l2) in means.items():
        noise = rng.normal(0, spread / 4, n)
        l2_noise = rng.normal(0, l2_spread, n)
        for i in range(n):
            rows.append(
                dict(
                    loss=loss,
                    T=300,
                    image_id=i,
                    iterations=iterations + difficulty[i] + noise[i],
                    success_l2=l2 + difficulty[i] / 100 + l2_noise[i],
                    z_t_late=1.0,
                    z_t_end=1.0 + (0.5 if loss == "logit" else 0.0),
                    grad_first=10.0,
                    grad_last=0.1,
                )
            )
    return fd._Images.from_rows(rows)


def _measures(ep: fd._Images, detectors: list[dict] | None = None) -> fd._Measures:
    return fd._Measures(ep=ep, em=ep, seconds={}, attacks={}, detectors=detectors or [])


PAPER = {"ce": (36.0, 1.00), "ce-sign": (51.0, 1.24), "logit": (45.0, 1.15), "m-logit": (39.0, 1.10)}


def test_a_clear_ordering_agrees() -> None:
    f = fd._fewest_iterations(_measures(_images(PAPER)))
    assert f.verdict == "agrees", f.comparisons
    assert "[" in f.measured  # every mean with its interval


def test_the_opposite_ordering_differs() -> None:
    flipped = {**PAPER, "ce": (55.0, 1.30)}
    f = fd._fewest_iterations(_measures(_images(flipped)))
    assert f.verdict == "differs"
    assert any("iterations ce-sign − ce" in c and "(differs)" in c for c in f.comparisons)


def test_a_difference_within_the_noise_is_inconclusive() -> None:
    # m-logit's L2 1 % below CE's, as on the digits default: not a finding either way
    close = {**PAPER, "m-logit": (39.0, 0.99)}
    f = fd._fewest_iterations(_measures(_images(close, l2_spread=0.3)))
    assert f.verdict == "inconclusive", f.comparisons
    assert any(c.startswith("L2 m-logit − ce") and "(inconclusive)" in c for c in f.comparisons)


def _detectors(accuracies: dict[str, float], n: int = 200) -> list[dict]:
    rows = enumerate(accuracies.items())
    return [dict(arch="small-cnn", source=k, accuracy=v, n_images=n, run_id=i) for i, (k, v) in rows]


@pytest.mark.parametrize(
    ("accuracies", "verdict"),
    [
        ({"ce": 0.80, "ce-sign": 0.99, "logit": 0.78, "m-logit": 0.75}, "agrees"),
        ({"ce": 0.99, "ce-sign": 0.70, "logit": 0.78, "m-logit": 0.75}, "differs"),
        ({"ce": 1.0, "ce-sign": 1.0, "logit": 1.0, "m-logit": 0.9}, "inconclusive"),  # a tie at the ceiling
    ],
)
def test_detector_verdicts(accuracies: dict[str, float], verdict: str) -> None:
    f = fd._detectors(_measures(_images(PAPER), _detectors(accuracies)))
    assert f.verdict == verdict, f.comparisons


def test_missing_runs_are_no_data() -> None:
    f = fd._fewest_iterations(_measures(_images({k: PAPER[k] for k in SOURCES[:2]})))
    assert f.verdict == "no data"


def test_bootstrap_intervals_are_seeded_and_cover_the_mean() -> None:
    v = np.random.default_rng(3).normal(5.0, 1.0, 300)
    a, b = st.mean(v), st.mean(v)
    assert a == b and a.lo < 5.0 < a.hi and a.lo < a.value < a.hi
    tie = st.proportion_difference(1.0, 100, 1.0, 100)
    assert (tie.lo, tie.hi) == (0.0, 0.0) and st.judge(tie, above=0) == "inconclusive"
    assert st.judge(st.mean(np.full(50, 6.0)), above=0) == "agrees"  # a constant effect is an effect
    assert st.judge(st.mean(np.zeros(50)), above=0) == "inconclusive"  # all at the floor: no effect
    assert st.judge(st.proportion(1.0, 100), above=0.5) == "agrees"
    assert st.combine(["agrees", "inconclusive"]) == "inconclusive"
    assert st.combine(["agrees", "differs"]) == "differs"


# --- stores where each verdict must come out ----------------------------------------------------
# The runs go through the whole pipeline (plan, worker, writer, SQLite, DuckDB); only the unified
# iteration's numbers are scripted, so that each source reaches its target at a known iteration
# with a known L2, image by image.

T_SCRIPTED, N_SCRIPTED = 20, 60
SCENARIOS = {
    # source: (first-success iteration, L2 at success); image i adds i % 3 iterations
    "agrees": {"ce": (8, 0.10), "ce-sign": (14, 0.14), "logit": (12, 0.13), "m-logit": (10, 0.12)},
    "differs": {"ce": (14, 0.16), "ce-sign": (9, 0.14), "logit": (10, 0.13), "m-logit": (11, 0.15)},
    # m-logit's L2 equals CE's on average, ± 0.02 image by image: no difference either way
    "inconclusive": {"ce": (8, 0.10), "ce-sign": (14, 0.14), "logit": (12, 0.13), "m-logit": (10, 0.10)},
}


def _scripted(scenario: dict[str, tuple[int, float]]):  # noqa: ANN202
    import torch

    from advdb.attacks.base import BatchOutcome
    from advdb.attacks.stats import COL, K

    def run(self, model, x0, y, t, *, num_classes):  # noqa: ANN001, ANN202, ARG001
        first, l2 = scenario[self.loss]
        B, n = len(y), torch.arange(self.iterations + 1, dtype=torch.float32)[:, None]
        k = first + torch.arange(B) % 3
        size = l2 + (0.01 * (1 - 2 * (torch.arange(B) % 2)) if self.loss == "m-logit" and l2 == 0.10 else 0.0)
        stats = torch.zeros(self.iterations + 1, B, K)
        stats[:, :, COL["pred"]] = torch.where(n >= k, t.float(), y.float())
        stats[:, :, COL["l2"]] = size * n / k
        stats[:, :, COL["z_target"]] = n * (0.2 if self.loss in ("logit", "m-logit") else 0.01)
        stats[:, :, COL["grad_l2"]] = 10.0 / (1 + n)
        return BatchOutcome(x_adv=x0.clone(), stats=stats, search_step=None, seconds=0.01)

    return run


@pytest.mark.parametrize("verdict", list(SCENARIOS))
def test_stores_give_each_verdict(verdict: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from advdb.analytics.query import QuerySession, checked_location
    from advdb.attacks.unified import UnifiedAttack
    from advdb.runner import AttackSpec, run_attack
    from advdb.store import open_store

    monkeypatch.setattr(UnifiedAttack, "run", _scripted(SCENARIOS[verdict]))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        for loss in SOURCES:
            params = {"loss": loss, "mode": "equal-perturbation", "iterations": T_SCRIPTED}
            run_attack(store, AttackSpec(params=params, n=N_SCRIPTED, batch_size=N_SCRIPTED, save_images=False))
    with QuerySession(checked_location(url)) as q:
        first = fd.measure_findings(q)[0]
    assert first.verdict == verdict, first.comparisons


def test_cost_per_iteration_compares_sources_within_one_mode() -> None:
    # every source costs 2 ms per image-iteration in equal perturbation and 1 ms in equal
    # multiplier; m-logit has most of its batches in the dearer mode, the others in the cheaper
    rng = np.random.default_rng(0)

    def batches(ms: float, n: int) -> np.ndarray:
        return ms * 1e-3 * (1 + 0.01 * rng.standard_normal(n))

    seconds = {
        "equal-perturbation": {k: batches(2.0, 12 if k == "m-logit" else 2) for k in SOURCES},
        "equal-multiplier": {k: batches(1.0, 2 if k == "m-logit" else 12) for k in SOURCES},
    }
    m = fd._Measures(ep=_images(PAPER), em=_images(PAPER), seconds=seconds, attacks={}, detectors=[])
    f = fd._cost_per_iteration(m)
    assert f.verdict == "agrees", f.comparisons  # pooled, m-logit would look 1.6× dearer
    assert [c.split("(")[1].split(",")[0] for c in f.comparisons] == ["equal perturbation", "equal multiplier"]
    only_em = fd._Measures(
        ep=_images(PAPER),
        em=_images(PAPER),
        seconds={"equal-multiplier": seconds["equal-multiplier"]},
        attacks={},
        detectors=[],
    )
    assert fd._cost_per_iteration(only_em).verdict == "agrees"
    partial = {"equal-perturbation": {k: v for k, v in seconds["equal-perturbation"].items() if k != "ce"}}
    assert (
        fd._cost_per_iteration(
            fd._Measures(ep=_images(PAPER), em=_images(PAPER), seconds=partial, attacks={}, detectors=[])
        ).verdict
        == "no data"
    )
