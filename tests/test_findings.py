"""Findings judged with statistics: each verdict (agrees, differs, inconclusive) comes out
when the data say so, and only then."""

from __future__ import annotations

import re

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
    assert (f.number, f.verdict) == (6, verdict), f.comparisons
    assert f.measured.startswith("small-cnn: ce ") and len(f.comparisons) == 4 + 3
    assert f.comparisons[0].startswith("small-cnn ce above chance (50%): ")


def test_missing_runs_are_no_data() -> None:
    f = fd._fewest_iterations(_measures(_images({k: PAPER[k] for k in SOURCES[:2]})))
    assert f.verdict == "no data"


JUDGES = (
    fd._fewest_iterations,
    fd._ce_stalls,
    fd._ce_gradient_decays,
    fd._m_logit_vs_logit,
    fd._cost_per_iteration,
    fd._detectors,
    fd._ce_transfers_less,
    fd._ce_is_fragile,
)


def test_each_judge_numbers_its_finding_and_says_what_it_needs() -> None:
    empty = fd._Images({}, {})
    nothing = fd._Measures(ep=empty, em=empty, seconds={}, attacks={}, detectors=[])
    found = [judge(nothing) for judge in JUDGES]
    assert [(f.number, f.verdict, f.comparisons) for f in found] == [(i, "no data", []) for i in range(1, 9)]
    assert all(f.measured.startswith("needs ") and f.claim for f in found)
    assert "CE" in found[2].claim and "M-logit" in found[3].claim and "CE-sign" in found[5].claim
    full = [judge(_measures(_images(PAPER), _detectors({"ce": 0.8, "ce-sign": 0.9}))) for judge in JUDGES[:6]]
    assert [f.number for f in full] == [1, 2, 3, 4, 5, 6]
    assert [f.claim for f in full] == [f.claim for f in found[:6]]  # the same claim, with or without data


def test_a_detector_is_judged_against_its_own_chance_level() -> None:
    m = _measures(_images(PAPER), _detectors({"ce": 0.85, "ce-sign": 0.95}))
    m.chance = {0: 0.9, 1: 0.5}  # run 0 (ce) tested on a set that is 90 % one class
    f = fd._detectors(m)
    assert f.comparisons[0].startswith("small-cnn ce above chance (90%): ") and f.comparisons[0].endswith("(differs)")
    assert f.comparisons[1].startswith("small-cnn ce-sign above chance (50%): ") and f.verdict == "differs"


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
# with a known L2, raises z_t at a known rate, has a known gradient size and batch time.

T_SCRIPTED, N_SCRIPTED, BATCH_SCRIPTED = 20, 60, 30
SCENARIOS = {
    "agrees": dict(
        # source: (first-success iteration, L2 at success); image i adds i % 3 iterations
        success={"ce": (8, 0.10), "ce-sign": (14, 0.14), "logit": (11, 0.13), "m-logit": (12, 0.12)},
        z_rate={"ce": 0.01, "ce-sign": 0.01, "logit": 0.2, "m-logit": 0.2},  # z_t gained per iteration
        grad="decays",  # the equal-multiplier CE run's gradient size over the iterations
        m_logit_seconds=(0.01, 0.01),  # its two batches' seconds (every other source: 0.01 each)
    ),
    "differs": dict(
        success={"ce": (14, 0.16), "ce-sign": (9, 0.14), "logit": (10, 0.13), "m-logit": (11, 0.15)},
        z_rate={"ce": 0.3, "ce-sign": 0.3, "logit": 0.2, "m-logit": 0.2},
        grad="grows",
        m_logit_seconds=(0.03, 0.03),
    ),
    "inconclusive": dict(
        # m-logit's L2 equals CE's and logit's on average, ± 0.01 image by image: no difference either way
        success={"ce": (8, 0.10), "ce-sign": (14, 0.14), "logit": (9, 0.10), "m-logit": (10, 0.10)},
        z_rate={"ce": 0.1, "ce-sign": 0.1, "logit": 0.1, "m-logit": 0.1},
        grad="constant",
        m_logit_seconds=(0.008, 0.017),  # 1.25× the others on average, 0.8× or 1.7× per batch
    ),
}
# findings 1–8 in each scenario (no detector, transfer or defense runs: 6–8 have no data)
EXPECTED = {v: [v] * 5 + ["no data"] * 3 for v in SCENARIOS}


def _scripted(scenario: dict):  # noqa: ANN202
    import torch

    from advdb.attacks.base import BatchOutcome
    from advdb.attacks.stats import COL, K

    calls: dict[str, int] = {}

    def run(self, model, x0, y, t, *, num_classes):  # noqa: ANN001, ANN202, ARG001
        first, l2 = scenario["success"][self.loss]
        B, n = len(y), torch.arange(self.iterations + 1, dtype=torch.float32)[:, None]
        k = first + torch.arange(B) % 3
        size = l2 + (0.01 * (1 - 2 * (torch.arange(B) % 2)) if self.loss == "m-logit" and l2 == 0.10 else 0.0)
        grad = {"decays": 10.0 / (1 + n), "grows": 10.0 * (1 + n), "constant": 10.0 + 0 * n}[scenario["grad"]]
        stats = torch.zeros(self.iterations + 1, B, K)
        stats[:, :, COL["pred"]] = torch.where(n >= k, t.float(), y.float())
        stats[:, :, COL["l2"]] = size * n / k
        stats[:, :, COL["z_target"]] = n * scenario["z_rate"][self.loss]
        stats[:, :, COL["grad_l2"]] = grad
        batch = calls[self.loss] = calls.get(self.loss, -1) + 1
        seconds = scenario["m_logit_seconds"][batch % 2] if self.loss == "m-logit" else 0.01
        return BatchOutcome(x_adv=x0.clone(), stats=stats, search_step=None, seconds=seconds)

    return run


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scripted_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A store of the four equal-perturbation runs and the equal-multiplier CE run, scripted."""
    from advdb.attacks.unified import UnifiedAttack
    from advdb.runner import AttackSpec, run_attack, start_writer
    from advdb.store import open_store

    url = f"sqlite:///{tmp_path_factory.mktemp('scripted') / 'store.db'}"
    runs = [(loss, "equal-perturbation") for loss in SOURCES] + [("ce", "equal-multiplier")]
    with pytest.MonkeyPatch.context() as mp, open_store(url) as store:
        mp.setattr(UnifiedAttack, "run", _scripted(SCENARIOS[request.param]))
        writer = start_writer(store, save_images=False)
        try:
            for loss, mode in runs:
                params = {"loss": loss, "mode": mode, "iterations": T_SCRIPTED}
                spec = AttackSpec(params=params, n=N_SCRIPTED, batch_size=BATCH_SCRIPTED, save_images=False)
                run_attack(store, spec, writer=writer)
        finally:
            writer.stop()
    return request.param, url


def test_stores_give_each_verdict(scripted_store: tuple[str, str]) -> None:
    from advdb.analytics.query import QuerySession, checked_location

    verdict, url = scripted_store
    with QuerySession(checked_location(url)) as q:
        findings = fd.measure_findings(q)
    assert [f.verdict for f in findings] == EXPECTED[verdict], [(f.number, f.comparisons) for f in findings]
    if verdict == "inconclusive":
        assert "ratio at T / at 0: 1.000 [1.000, 1.000] (inconclusive)" in findings[2].comparisons


# --- each judge on synthetic measures, one case per verdict -----------------------------------------


def _gains(late_end: dict[str, tuple[float, float]], n: int = 60, noise: float = 0.0) -> fd._Images:
    """Per source: z_t at 80 % of T and at T (the same for every image, plus ± noise image by image)."""
    rows = []
    for loss, (late, end) in late_end.items():
        for i in range(n):
            wobble = noise * (1 - 2 * (i % 2)) if loss == "logit" else 0.0
            rows.append(
                dict(loss=loss, T=20, image_id=i, iterations=5, success_l2=0.1, z_t_late=late, z_t_end=end + wobble)
                | dict(grad_first=1.0, grad_last=1.0)
            )
    return fd._Images.from_rows(rows)


@pytest.mark.parametrize(
    ("logit", "noise", "verdict"),
    [((1.0, 3.0), 0.0, "agrees"), ((1.0, 1.1), 0.0, "differs"), ((1.0, 1.5), 1.0, "inconclusive")],
)
def test_stall_verdicts(logit: tuple[float, float], noise: float, verdict: str) -> None:
    # CE and CE-sign gain 0.5 over the last fifth; logit gains 2 (agrees), 0.1 (differs), 0.5 ± 1 (inconclusive)
    ep = _gains({"ce": (1.0, 1.5), "ce-sign": (2.0, 2.5), "logit": logit, "m-logit": (1.0, 1.0)}, noise=noise)
    f = fd._ce_stalls(_measures(ep))
    assert (f.number, f.verdict) == (2, verdict), f.comparisons
    assert "m-logit stops once its margin" in f.measured and f.measured.startswith("z_t gain over the last 20%")
    assert "logit 0.50" in f.measured or "logit 2.00" in f.measured or "logit 0.10" in f.measured
    moving = fd._ce_stalls(
        _measures(_gains({"ce": (1.0, 1.5), "ce-sign": (2.0, 2.5), "logit": logit, "m-logit": (1, 2)}))
    )
    assert "m-logit stops" not in moving.measured  # it gained 1: it did not stop
    assert fd._ce_stalls(_measures(_gains({"ce": (1.0, 1.5)}))).verdict == "no data"


def _grads(first: float, last: np.ndarray) -> fd._Images:
    rows = [
        dict(loss="ce", T=20, image_id=i, iterations=5, success_l2=0.1, z_t_late=1.0, z_t_end=1.0)
        | dict(grad_first=first, grad_last=float(v))
        for i, v in enumerate(last)
    ]
    return fd._Images.from_rows(rows)


@pytest.mark.parametrize(
    ("last", "verdict"),
    [
        (np.full(40, 0.5), "agrees"),  # ‖∇CE‖ halves
        (np.full(40, 2.0), "differs"),  # it doubles
        (np.tile([0.5, 1.5], 20), "inconclusive"),  # halves on some images, grows on the others
    ],
)
def test_gradient_decay_verdicts(last: np.ndarray, verdict: str) -> None:
    em = _grads(1.0, last)
    f = fd._ce_gradient_decays(fd._Measures(ep=em, em=em, seconds={}, attacks={}, detectors=[]))
    assert (f.number, f.verdict) == (3, verdict), f.comparisons
    assert f.measured.startswith("mean ‖∇CE‖ at iteration 0: 1.000 [1.000, 1.000], at T: ")
    assert f.comparisons[0].startswith(f"ratio at T / at 0: {last.mean():.3f}")
    empty = fd._Images({}, {})
    assert fd._ce_gradient_decays(fd._Measures(ep=em, em=empty, seconds={}, attacks={}, detectors=[])).verdict == (
        "no data"
    )


@pytest.mark.parametrize(
    ("m_logit", "verdict"),
    [
        ((50.0, 1.05), "agrees"),  # more iterations than logit (45), less L2 (1.15)
        ((40.0, 1.05), "differs"),  # fewer iterations
        ((50.0, 1.30), "differs"),  # more L2
        ((50.0, 1.15), "inconclusive"),  # the same L2
    ],
)
def test_m_logit_vs_logit_verdicts(m_logit: tuple[float, float], verdict: str) -> None:
    f = fd._m_logit_vs_logit(_measures(_images({**PAPER, "m-logit": m_logit})))
    assert (f.number, f.verdict) == (4, verdict), f.comparisons
    assert f.measured.startswith("iterations m-logit ") and "; L2 at success m-logit " in f.measured
    assert fd._m_logit_vs_logit(_measures(_images({"ce": PAPER["ce"]}))).verdict == "no data"


def test_cost_per_iteration_verdicts() -> None:
    def measures(m_logit: list[float]) -> fd._Measures:
        seconds = {k: np.full(4, 1e-3) for k in SOURCES} | {"m-logit": np.array(m_logit) * 1e-3}
        return fd._Measures(ep=_images(PAPER), em=_images(PAPER), seconds={"equal-perturbation": seconds}, attacks={},
                            detectors=[])  # fmt: skip

    cheap = fd._cost_per_iteration(measures([1.1, 1.1, 1.1, 1.1]))
    assert (cheap.number, cheap.verdict) == (5, "agrees")
    assert (
        cheap.measured
        == "ms per image-iteration (equal perturbation): ce 1.000, ce-sign 1.000, logit 1.000, m-logit 1.100"
    )
    assert cheap.comparisons == [
        "time per iteration m-logit / others (equal perturbation, batches): 1.10 [1.10, 1.10] (agrees)"
    ]
    assert fd._cost_per_iteration(measures([2.0, 2.0, 2.0, 2.0])).verdict == "differs"
    assert fd._cost_per_iteration(measures([0.5, 2.0, 0.5, 2.0])).verdict == "inconclusive"
    # CW: more model evaluations per image than the m-logit run's T + 1 (301) agrees, fewer differs
    for evaluations, verdict in ((5000.0, "agrees"), (100.0, "differs"), (301.0, "differs")):
        m = measures([1.0] * 4)
        m.attacks = {"cw": {"evaluations_per_image": evaluations, "seconds_per_image": 0.5}}
        f = fd._cost_per_iteration(m)
        assert f.verdict == verdict and "vs 301 for the m-logit source" in f.measured, f.comparisons
        assert f.measured.startswith("ms per image-iteration (equal perturbation): ") and "CW spends" in f.measured


def _per_image(group: str, values: dict[str, list[float]], value: str) -> list[dict]:
    return [
        {group: "other", "mode": "equal-perturbation", "loss": loss, "image_id": i, value: v}
        for loss, vs in values.items()
        for i, v in enumerate(vs)
    ]


CE_BELOW = {"ce": [0.0, 0.0, 1.0, 0.0] * 10, "logit": [1.0, 1.0, 1.0, 0.0] * 10, "m-logit": [1.0, 0.0, 1.0, 1.0] * 10}
CE_ABOVE = {"ce": [1.0, 1.0, 1.0, 0.0] * 10, "logit": [0.0, 0.0, 1.0, 0.0] * 10, "m-logit": [0.0, 1.0, 0.0, 0.0] * 10}
CE_EVEN = {"ce": [1.0, 0.0] * 20, "logit": [0.0, 1.0] * 20, "m-logit": [1.0, 0.0] * 20}


@pytest.mark.parametrize(
    ("values", "verdict"), [(CE_BELOW, "agrees"), (CE_ABOVE, "differs"), (CE_EVEN, "inconclusive")]
)
def test_transfer_and_fragility_verdicts(values: dict[str, list[float]], verdict: str) -> None:
    m = _measures(_images(PAPER))
    m.transfer = _per_image("model", values, "targeted")
    m.defenses = _per_image("transform", values, "survival")
    seven, eight = fd._ce_transfers_less(m), fd._ce_is_fragile(m)
    assert (seven.number, seven.verdict, eight.number, eight.verdict) == (7, verdict, 8, verdict), (
        seven.comparisons,
        eight.comparisons,
    )
    assert len(seven.comparisons) == 2 and seven.comparisons[0].startswith("other, equal perturbation targeted")
    assert seven.measured.startswith("targeted transfer onto other, equal perturbation: ce ")
    assert eight.measured.startswith("share of the swept strengths each image survives: other, equal perturbation")
    # two models in two modes: compared within each, never across (m-logit only where it was transferred)
    rows = _per_image("model", values, "targeted") + [
        r | {"model": "second", "mode": "equal-multiplier"} for r in _per_image("model", values, "targeted")
        if r["loss"] != "m-logit"
    ]  # fmt: skip
    m.transfer = rows
    both = fd._ce_transfers_less(m)
    assert [c.split(":")[0] for c in both.comparisons] == [
        "other, equal perturbation targeted transfer logit − ce",
        "other, equal perturbation targeted transfer m-logit − ce",
        "second, equal multiplier targeted transfer logit − ce",
    ]
    assert both.verdict == verdict
    empty = _measures(_images(PAPER))
    assert fd._ce_transfers_less(empty).verdict == fd._ce_is_fragile(empty).verdict == "no data"


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


# --- every comparison of a real store judged in the paper's direction ----------------------------
# What each finding claims, written out from the paper (Sections IV and V) independently of
# findings.py: the comparison's label, and whether the claim is "above" or "below" the threshold.
CLAIMS = [
    (r"iterations (ce-sign|logit|m-logit) − ce", "above", 0.0),
    (r"L2 (ce-sign|logit|m-logit) − ce", "above", 0.0),
    (r"iterations ce-sign − (logit|m-logit)", "above", 0.0),
    (r"gain logit − (ce|ce-sign)", "above", 0.0),
    (r"ratio at T / at 0", "below", 1.0),
    (r"iterations m-logit − logit", "above", 0.0),
    (r"L2 m-logit − logit", "below", 0.0),
    (r"time per iteration m-logit / others \(.*\)", "below", 1.25),
    (r"\S+ \S+ above chance \((?P<level>\d+)%\)", "above", None),
    (r"\S+ ce-sign − \S+", "above", 0.0),
    (r".+ (targeted transfer|survival) (logit|m-logit) − ce", "above", 0.0),
]
COMPARISON = re.compile(r"^(?P<label>.+): (?P<value>\S+) \[(?P<lo>\S+), (?P<hi>\S+)\] \((?P<verdict>[a-z ]+)\)$")


def _expected(label: str, lo: float, hi: float, lo_text: str, hi_text: str) -> set[str] | None:
    """The verdicts a comparison may have from its printed interval (both sides when a bound prints
    as the threshold itself); None for a label no claim describes."""
    for pattern, side, threshold in CLAIMS:
        match = re.fullmatch(pattern, label)
        if not match:
            continue
        level = threshold if threshold is not None else int(match["level"]) / 100
        if np.isnan(lo):
            return {"no data"}
        above, below = ("agrees", "differs") if side == "above" else ("differs", "agrees")
        if lo > level:
            return {above}
        if hi < level:
            return {below}
        rounded = {float(lo_text), float(hi_text)}
        return {"inconclusive"} | ({above, below} if level in rounded else set())
    return None


def check_comparisons(findings: list[fd.Finding]) -> None:
    """Each comparison's verdict follows from its interval and the claim's direction; each
    finding's verdict is the combination of its comparisons'."""
    for f in findings:
        verdicts = []
        for c in f.comparisons:
            if c.startswith("CW evaluations per image"):
                verdicts.append(c.rsplit("(", 1)[1].rstrip(")"))
                continue
            m = COMPARISON.match(c)
            assert m, c
            allowed = _expected(m["label"], float(m["lo"]), float(m["hi"]), m["lo"], m["hi"])
            assert allowed is not None, f"no claim describes {c!r}"
            assert m["verdict"] in allowed, (f.number, c, allowed)
            verdicts.append(m["verdict"])
        assert f.verdict == st.combine(verdicts) or (not f.comparisons and f.verdict == "no data"), (f.number, f)


def test_comparisons_follow_the_claims(scripted_store: tuple[str, str]) -> None:
    from advdb.analytics.query import QuerySession, checked_location

    with QuerySession(checked_location(scripted_store[1])) as q:
        findings = fd.measure_findings(q)
    check_comparisons(findings)
    assert sum(len(f.comparisons) for f in findings) >= 12
