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
    assert tie.degenerate and st.judge(tie, above=0) == "inconclusive"
    assert st.judge(st.proportion(1.0, 100), above=0.5) == "agrees"
    assert st.combine(["agrees", "inconclusive"]) == "inconclusive"
    assert st.combine(["agrees", "differs"]) == "differs"
