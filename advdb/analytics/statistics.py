"""Uncertainty for the findings: seeded bootstrap intervals over images and a three-way verdict.

Runs of one study attack the same images towards the same targets, so two sources compare
image by image (a paired bootstrap of the mean difference); detectors are compared from
their held-out accuracy and size (a parametric bootstrap of each proportion). A claim
*agrees* when the whole interval lies on its side, *differs* when the whole interval lies
on the other side, and is *inconclusive* when the interval touches or straddles the
threshold — as it does when every value sits at a ceiling or floor (a tie at 100 % gives a
difference of exactly 0 in every resample: it supports nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AGREES, DIFFERS, INCONCLUSIVE, NO_DATA = "agrees", "differs", "inconclusive", "no data"
VERDICTS: tuple[str, ...] = (AGREES, DIFFERS, INCONCLUSIVE, NO_DATA)

N_BOOT = 2000
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A statistic, its interval and the number of images (or batches) behind it."""

    value: float
    lo: float
    hi: float
    n: int

    def format(self, digits: int = 1, *, percent: bool = False) -> str:
        if percent:
            return f"{self.value:.0%} [{self.lo:.0%}, {self.hi:.0%}]"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


NONE = Estimate(float("nan"), float("nan"), float("nan"), 0)


def _interval(draws: np.ndarray, value: float, n: int) -> Estimate:
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return Estimate(float(value), float(lo), float(hi), n)


def _resample(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(N_BOOT, n))


def mean(values: np.ndarray, *, seed: int = SEED) -> Estimate:
    """The mean of ``values`` (NaN dropped) with its bootstrap interval."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return NONE
    return _interval(v[_resample(len(v), seed)].mean(1), float(v.mean()), len(v))


def paired_difference(a: np.ndarray, b: np.ndarray, *, seed: int = SEED) -> Estimate:
    """Mean of ``a − b`` over the images where both are defined (not NaN), bootstrapped by image."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = ~(np.isnan(a) | np.isnan(b))
    return mean(a[both] - b[both], seed=seed)


def ratio_of_means(a: np.ndarray, b: np.ndarray, *, seed: int = SEED) -> Estimate:
    """``mean(a) / mean(b)`` over paired values, bootstrapped by image (or batch)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    if len(a) == 0 or b.mean() == 0:
        return NONE
    idx = _resample(len(a), seed)
    return _interval(a[idx].mean(1) / b[idx].mean(1), float(a.mean() / b.mean()), len(a))


def ratio_of_independent_means(a: np.ndarray, b: np.ndarray, *, seed: int = SEED) -> Estimate:
    """``mean(a) / mean(b)`` of two unpaired samples (such as batch timings), each resampled on its own."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0 or b.mean() == 0:
        return NONE
    rng = np.random.default_rng(seed)
    draws = rng.choice(a, (N_BOOT, len(a))).mean(1) / rng.choice(b, (N_BOOT, len(b))).mean(1)
    return _interval(draws, float(a.mean() / b.mean()), min(len(a), len(b)))


def proportion_difference(p1: float, n1: int, p2: float, n2: int, *, seed: int = SEED) -> Estimate:
    """``p1 − p2`` of two independent proportions (accuracies on ``n1`` and ``n2`` images)."""
    rng = np.random.default_rng(seed)
    draws = rng.binomial(n1, p1, N_BOOT) / n1 - rng.binomial(n2, p2, N_BOOT) / n2
    return _interval(draws, p1 - p2, min(n1, n2))


def proportion(p: float, n: int) -> Estimate:
    """An accuracy ``p`` on ``n`` images with its Wilson score interval (which, unlike a
    bootstrap, does not collapse to a point at 0 % or 100 %)."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + CONFIDENCE / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if p == 0 else max(0.0, centre - half)  # exactly: centre − half rounds to 4e-19 at p = 0
    hi = 1.0 if p == 1 else min(1.0, centre + half)
    return Estimate(p, lo, hi, n)


def judge(estimate: Estimate, *, above: float | None = None, below: float | None = None) -> str:
    """The verdict on the claim "``estimate`` is above ``above``" (or below ``below``)."""
    if estimate.n == 0 or np.isnan(estimate.value):
        return NO_DATA
    if above is not None:
        return AGREES if estimate.lo > above else DIFFERS if estimate.hi < above else INCONCLUSIVE
    assert below is not None
    return AGREES if estimate.hi < below else DIFFERS if estimate.lo > below else INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several comparisons: differs if one differs, agrees if all agree."""
    if not verdicts or NO_DATA in verdicts:
        return NO_DATA
    if DIFFERS in verdicts:
        return DIFFERS
    return AGREES if all(v == AGREES for v in verdicts) else INCONCLUSIVE
