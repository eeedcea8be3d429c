"""The findings' statistics against independent references: scipy's bootstrap and Wilson
interval, textbook normal approximations, and properties every interval must have (checked on
seeded random draws: an interval holds its estimate, widens as n shrinks, swaps sign when the
inputs swap; Wilson bounds stay in [0, 1]). The judges and their combination, case by case."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from advdb.analytics import statistics as st

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def _scipy_percentile(data: tuple[np.ndarray, ...], statistic, *, paired: bool) -> tuple[float, float]:  # noqa: ANN001
    res = stats.bootstrap(
        data,
        statistic,
        paired=paired,
        vectorized=True,
        n_resamples=20_000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(12345),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _close(got: st.Estimate, ref: tuple[float, float], share: float = 0.1) -> None:
    """Bounds within ``share`` of the reference interval's width (Monte Carlo error of 2000 draws)."""
    width = ref[1] - ref[0]
    assert abs(got.lo - ref[0]) < share * width and abs(got.hi - ref[1]) < share * width, (got, ref)


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    a = rng.normal(5.0, 2.0, 200)
    return {
        "a": a,
        "b": a - rng.normal(0.8, 1.0, 200),
        "pos": rng.gamma(3.0, 1.0, 150),
        "pos2": rng.gamma(2.0, 1.5, 90),
    }


def test_mean_matches_scipy_and_the_normal_interval(samples) -> None:  # noqa: ANN001
    a = samples["a"]
    e = st.mean(a)
    assert e.value == pytest.approx(a.mean(), abs=1e-12) and e.n == 200
    _close(e, _scipy_percentile((a,), lambda x, axis: x.mean(axis), paired=False))
    half = Z95 * a.std(ddof=1) / math.sqrt(len(a))
    _close(e, (a.mean() - half, a.mean() + half), 0.1)
    # NaN dropped: the estimate over the defined values only
    with_nan = np.concatenate([a, [np.nan, np.nan]])
    assert st.mean(with_nan) == e
    assert st.mean(np.array([np.nan])).n == 0 and st.mean(np.array([])).n == 0


def test_mean_is_the_documented_seeded_percentile_bootstrap(samples) -> None:  # noqa: ANN001
    """2000 resamples of the images from a generator seeded 0, the 2.5th and 97.5th percentiles."""
    a = samples["pos"]
    draws = a[np.random.default_rng(0).integers(0, len(a), size=(2000, len(a)))].mean(axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    e = st.mean(a)
    assert (e.lo, e.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert st.mean(a, seed=1) != e  # the seed is used


def test_paired_difference_matches_scipy(samples) -> None:  # noqa: ANN001
    a, b = samples["a"].copy(), samples["b"].copy()
    a[3], b[10] = np.nan, np.nan  # an image either source lacks is left out of both
    e = st.paired_difference(a, b)
    keep = ~(np.isnan(a) | np.isnan(b))
    assert e.n == 198 and e.value == pytest.approx((a[keep] - b[keep]).mean(), abs=1e-12)
    _close(e, _scipy_percentile((a[keep], b[keep]), lambda x, y, axis: (x - y).mean(axis), paired=True))
    # paired, not independent: the per-image difficulty cancels, so the interval is much narrower
    unpaired = _scipy_percentile((a[keep], b[keep]), lambda x, y, axis: x.mean(axis) - y.mean(axis), paired=False)
    assert e.hi - e.lo < 0.7 * (unpaired[1] - unpaired[0])


def test_ratio_of_means_matches_scipy(samples) -> None:  # noqa: ANN001
    a, b = samples["pos"], samples["pos"] * 0.5 + np.random.default_rng(1).gamma(2.0, 0.5, 150)
    e = st.ratio_of_means(a, b)
    assert e.value == pytest.approx(a.mean() / b.mean(), abs=1e-12) and e.n == 150
    _close(e, _scipy_percentile((a, b), lambda x, y, axis: x.mean(axis) / y.mean(axis), paired=True))
    b_nan = b.copy()
    b_nan[0] = np.nan
    assert st.ratio_of_means(a, b_nan).n == 149
    assert st.ratio_of_means(a, np.zeros_like(a)).n == 0  # no ratio to a zero mean
    assert st.ratio_of_means(np.array([]), np.array([])).n == 0


def test_ratio_of_independent_means_matches_scipy(samples) -> None:  # noqa: ANN001
    a, b = samples["pos"], samples["pos2"]
    e = st.ratio_of_independent_means(a, b)
    assert e.value == pytest.approx(a.mean() / b.mean(), abs=1e-12) and e.n == 90
    _close(e, _scipy_percentile((a, b), lambda x, y, axis: x.mean(axis) / y.mean(axis), paired=False), 0.12)
    assert st.ratio_of_independent_means(a, np.zeros(3)).n == 0
    assert st.ratio_of_independent_means(np.array([]), b).n == 0
    assert st.ratio_of_independent_means(a, np.array([])).n == 0


def test_every_bootstrap_is_seeded(samples) -> None:  # noqa: ANN001
    """The same call gives the same interval; another seed another one (the seed reaches the generator)."""
    a, b = samples["pos"], samples["pos"][::-1].copy()
    calls = {
        "mean": lambda **kw: st.mean(a, **kw),
        "paired": lambda **kw: st.paired_difference(a, b, **kw),
        "ratio": lambda **kw: st.ratio_of_means(a, b, **kw),
        "independent": lambda **kw: st.ratio_of_independent_means(a, samples["pos2"], **kw),
        "proportions": lambda **kw: st.proportion_difference(0.8, 100, 0.6, 90, **kw),
    }
    for name, call in calls.items():
        assert call() == call() == call(seed=st.SEED), name
        assert call(seed=1) == call(seed=1) != call(), name
    assert st.paired_difference(a, b, seed=5) == st.mean(a - b, seed=5)


@pytest.mark.filterwarnings("error")  # no "mean of empty slice" on the way: nothing is computed
def test_empty_and_single_inputs() -> None:
    empty, one = np.array([]), np.array([3.0])
    assert st.mean(one) == st.Estimate(3.0, 3.0, 3.0, 1)
    assert st.paired_difference(one, np.array([1.0])) == st.Estimate(2.0, 2.0, 2.0, 1)
    assert st.ratio_of_means(one, np.array([2.0])) == st.Estimate(1.5, 1.5, 1.5, 1)
    assert st.ratio_of_independent_means(one, np.array([2.0])) == st.Estimate(1.5, 1.5, 1.5, 1)
    for e in (
        st.mean(empty),
        st.paired_difference(empty, empty),
        st.paired_difference(np.array([np.nan]), one),
        st.ratio_of_means(empty, empty),
        st.ratio_of_independent_means(empty, one),
        st.ratio_of_independent_means(one, empty),
    ):
        assert e.n == 0 and np.isnan(e.value) and st.judge(e, above=0) == "no data"


def test_proportion_difference_matches_the_normal_interval() -> None:
    p1, n1, p2, n2 = 0.9, 400, 0.7, 300
    e = st.proportion_difference(p1, n1, p2, n2)
    assert e.value == pytest.approx(0.2, abs=1e-12) and e.n == 300
    half = Z95 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    _close(e, (0.2 - half, 0.2 + half), 0.1)
    swapped = st.proportion_difference(p2, n2, p1, n1)
    assert swapped.value == pytest.approx(-0.2) and swapped.hi < 0 < e.lo


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (37, 50), (180, 200), (1, 1)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    e = st.proportion(k / n, n)
    assert e.value == k / n and e.n == n
    assert (e.lo, e.hi) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_by_hand() -> None:
    # p = 1/2, n = 100: centre 1/2, half-width z/(1 + z²/n) · sqrt(1/400 + z²/40000)
    z = Z95
    half = z / (1 + z * z / 100) * math.sqrt(0.25 / 100 + z * z / 40_000)
    e = st.proportion(0.5, 100)
    assert (e.lo, e.hi) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    assert st.proportion(1.0, 20).hi == 1.0 and st.proportion(1.0, 20).lo == pytest.approx(20 / (20 + z * z))
    assert st.proportion(0.0, 20).lo == 0.0 and st.proportion(0.0, 20).hi == pytest.approx(z * z / (20 + z * z))


# --- properties, on seeded random draws ---------------------------------------------------------

DRAWS = np.random.default_rng(2024)
CASES = [(int(DRAWS.integers(5, 60)), float(DRAWS.normal(0, 3)), float(DRAWS.uniform(0.2, 4))) for _ in range(25)]


@pytest.mark.parametrize(("n", "loc", "scale"), CASES)
def test_bootstrap_properties(n: int, loc: float, scale: float) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(loc, scale, n), rng.normal(0, scale, n)
    for e in (st.mean(a), st.paired_difference(a, b)):
        assert e.lo <= e.value <= e.hi and e.lo < e.hi
    # swapping the inputs swaps the sign of the interval
    d, r = st.paired_difference(a, b), st.paired_difference(b, a)
    assert (r.value, r.lo, r.hi) == pytest.approx((-d.value, -d.hi, -d.lo), abs=1e-12)
    # fewer images, a wider interval (the same values, the first quarter of them)
    many = np.tile(a, 4)
    assert st.mean(many).hi - st.mean(many).lo < st.mean(a).hi - st.mean(a).lo
    pos = np.abs(a) + 0.1
    q = st.ratio_of_means(pos, np.abs(b) + 0.1)
    assert q.lo <= q.value <= q.hi


@pytest.mark.parametrize("p", [0.0, 0.01, 0.3, 0.5, 0.77, 0.99, 1.0])
@pytest.mark.parametrize("n", [1, 3, 20, 50])  # p = 0 or 1 at other n: test_wilson_reaches_0_and_1
def test_wilson_properties(p: float, n: int) -> None:
    e = st.proportion(p, n)
    assert 0.0 <= e.lo <= e.value <= e.hi <= 1.0
    if 0 < p < 1:
        assert e.lo < p < e.hi
    if n < 50:
        big = st.proportion(p, 50)
        assert e.hi - e.lo > big.hi - big.lo


@pytest.mark.parametrize("n", [30, 80, 100, 500])
def test_wilson_reaches_0_and_1(n: int) -> None:
    zero, one = st.proportion(0.0, n), st.proportion(1.0, n)
    assert zero.lo == 0.0 and one.hi == 1.0
    assert st.judge(zero, above=0.0) == st.judge(one, below=1.0) == "inconclusive"


@pytest.mark.parametrize(("p1", "p2"), [(0.9, 0.6), (0.55, 0.5), (0.2, 0.35), (1.0, 0.95)])
def test_proportion_difference_properties(p1: float, p2: float) -> None:
    e = st.proportion_difference(p1, 200, p2, 200)
    assert e.lo <= e.value <= e.hi
    small = st.proportion_difference(p1, 30, p2, 30)
    assert small.hi - small.lo > e.hi - e.lo
    assert st.proportion_difference(p1, 200, p1, 200).lo <= 0 <= st.proportion_difference(p1, 200, p1, 200).hi


# --- judging --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "above", "below", "verdict"),
    [
        (0.1, 0.5, 0.0, None, "agrees"),
        (-0.5, -0.1, 0.0, None, "differs"),
        (-0.1, 0.5, 0.0, None, "inconclusive"),
        (0.0, 0.5, 0.0, None, "inconclusive"),  # touching the threshold supports nothing
        (-0.5, 0.0, 0.0, None, "inconclusive"),
        (0.5, 0.9, None, 1.0, "agrees"),
        (1.1, 1.4, None, 1.0, "differs"),
        (0.9, 1.1, None, 1.0, "inconclusive"),
        (0.5, 1.0, None, 1.0, "inconclusive"),
        (1.0, 1.5, None, 1.0, "inconclusive"),
    ],
)
def test_judge(lo: float, hi: float, above: float | None, below: float | None, verdict: str) -> None:
    e = st.Estimate((lo + hi) / 2, lo, hi, 10)
    assert st.judge(e, above=above, below=below) == verdict


def test_judge_without_data() -> None:
    assert st.judge(st.NONE, above=0) == "no data"
    assert st.judge(st.Estimate(float("nan"), 0.0, 1.0, 5), above=0) == "no data"
    assert st.judge(st.Estimate(0.5, 0.1, 0.9, 0), below=1) == "no data"


@pytest.mark.parametrize(
    ("verdicts", "combined"),
    [
        ([], "no data"),
        (["agrees"], "agrees"),
        (["agrees", "agrees"], "agrees"),
        (["agrees", "inconclusive"], "inconclusive"),
        (["inconclusive", "inconclusive"], "inconclusive"),
        (["agrees", "differs"], "differs"),
        (["inconclusive", "differs"], "differs"),
        (["agrees", "no data"], "no data"),
        (["differs", "no data"], "no data"),
    ],
)
def test_combine(verdicts: list[str], combined: str) -> None:
    assert st.combine(verdicts) == combined


def test_format() -> None:
    e = st.Estimate(0.5, 0.25, 0.75, 10)
    assert e.format() == "0.5 [0.2, 0.8]" and e.format(3) == "0.500 [0.250, 0.750]"
    assert e.format(percent=True) == "50% [25%, 75%]"
