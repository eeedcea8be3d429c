"""IFGS, CW-L2 and L-BFGS on the real digits CNN, and their records in the store."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advdb.analytics import run_sql
from advdb.attacks import LBFGS, CarliniWagnerL2, create_attack
from advdb.attacks.search import next_c
from advdb.errors import ConfigError
from advdb.runner import AttackSpec, run_attack
from advdb.store import open_store
from conftest import digits_batch


@pytest.fixture(scope="module")
def digits():  # noqa: ANN201
    return digits_batch(24, 5)


class Counting(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def q(url: str, sql: str) -> list[dict]:
    with open_store(url) as store:
        loc = store.location
    return run_sql(loc, sql).to_pylist()


def test_cw_rows_match_the_optimiser_steps(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    m = Counting(clf.module)
    out = CarliniWagnerL2(search_steps=3, max_iterations=20, abort_early=False).run(m, x, y, t, num_classes=10)
    assert out.rows_per_image == 60 == m.calls
    assert out.search_step[:, 0].tolist() == [0] * 20 + [1] * 20 + [2] * 20
    m.calls = 0
    out = CarliniWagnerL2(search_steps=3, max_iterations=200, abort_early=True).run(m, x, y, t, num_classes=10)
    assert out.rows_per_image == m.calls <= 600
    assert float(out.x_adv.min()) >= 0 and float(out.x_adv.max()) <= 1


def test_lbfgs_rows_match_the_model_evaluations(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    m = Counting(clf.module)
    out = LBFGS(search_steps=2, max_iterations=15, max_evaluations=30).run(m, x, y, t, num_classes=10)
    assert out.rows_per_image == m.calls
    steps = out.search_step[:, 0].numpy()
    assert steps[0] == 0 and steps[-1] == 1 and (np.diff(steps) >= 0).all()
    assert float(out.x_adv.min()) >= 0 and float(out.x_adv.max()) <= 1


def test_cw_search_grows_c_until_success_then_bisects() -> None:
    c, lo, hi = torch.tensor([0.1, 0.1]), torch.zeros(2), torch.full((2,), math.inf)
    c, lo, hi = next_c(c, lo, hi, torch.tensor([False, True]), grow_on_fail=True)
    torch.testing.assert_close(c, torch.tensor([1.0, 0.05]))  # fail: ×10; success: halve towards 0
    c, lo, hi = next_c(c, lo, hi, torch.tensor([True, False]), grow_on_fail=True)
    torch.testing.assert_close(c, torch.tensor([0.55, 0.075]))  # bisect inside the bracket
    torch.testing.assert_close(lo, torch.tensor([0.1, 0.05]))
    torch.testing.assert_close(hi, torch.tensor([1.0, 0.1]))


def test_lbfgs_search_looks_for_the_largest_successful_distance_weight() -> None:
    c, lo, hi = torch.tensor([0.1, 0.1]), torch.zeros(2), torch.full((2,), math.inf)
    c, lo, hi = next_c(c, lo, hi, torch.tensor([True, False]), grow_on_fail=False)
    torch.testing.assert_close(c, torch.tensor([1.0, 0.01]))
    c, lo, hi = next_c(c, lo, hi, torch.tensor([False, True]), grow_on_fail=False)
    torch.testing.assert_close(c, torch.tensor([math.sqrt(0.1), math.sqrt(0.001)]))  # geometric bisection


@pytest.mark.parametrize("attack", ["cw", "lbfgs"])
def test_cw_and_lbfgs_reach_the_target_and_store_the_smallest_l2(sqlite_url: str, attack: str) -> None:
    with open_store(sqlite_url) as store:
        run_id = run_attack(store, AttackSpec(attack=attack, params={}, n=48, batch_size=24))
    rows = q(
        sqlite_url,
        f"""
        SELECT s.image_id, s.final_pred = s.target AS ok, s.final_l2,
               min(t.l2) FILTER (WHERE t.pred = s.target) AS best_l2, count(*) AS n_rows
        FROM samples s JOIN trajectory t USING (run_id, image_id) WHERE s.run_id = {run_id} GROUP BY ALL""",
    )
    assert np.mean([r["ok"] for r in rows]) >= 0.85
    for r in rows:
        if r["ok"]:
            assert r["final_l2"] == pytest.approx(r["best_l2"], rel=1e-5, abs=1e-6)
    run = q(sqlite_url, f"SELECT attack, loss, iterations, config FROM runs WHERE run_id = {run_id}")[0]
    assert run["attack"] == attack and run["loss"] == {"cw": "m-logit", "lbfgs": "ce"}[attack]
    files = q(
        sqlite_url, f"SELECT count(*) AS n, sum(still_adversarial::INT) AS adv FROM artifacts WHERE run_id = {run_id}"
    )[0]
    assert files["n"] == 48


def test_ifgs_is_the_ce_sign_engine_with_an_epsilon_ball(sqlite_url: str) -> None:
    common = dict(n=16, batch_size=8, seed=3, image_format="npy")
    with open_store(sqlite_url) as store:
        a = run_attack(
            store, AttackSpec(attack="ifgs", params={"alpha": 0.01, "epsilon": 10.0, "iterations": 15}, **common)
        )
        b = run_attack(
            store,
            AttackSpec(
                params={"loss": "ce-sign", "mode": "equal-multiplier", "alpha": 0.01, "iterations": 15}, **common
            ),
        )
        c = run_attack(
            store, AttackSpec(attack="ifgs", params={"alpha": 0.01, "epsilon": 0.03, "iterations": 15}, **common)
        )
    cols = "image_id, iteration, pred, z_target, l2, step_l2"
    assert q(sqlite_url, f"SELECT {cols} FROM trajectory WHERE run_id = {a} ORDER BY 1, 2") == q(
        sqlite_url, f"SELECT {cols} FROM trajectory WHERE run_id = {b} ORDER BY 1, 2"
    )
    sha = "SELECT image_id, sha256 FROM artifacts WHERE run_id = {} ORDER BY 1"
    assert q(sqlite_url, sha.format(a)) == q(sqlite_url, sha.format(b))
    assert q(sqlite_url, f"SELECT max(linf) AS m FROM trajectory WHERE run_id = {c}")[0]["m"] <= 0.03 + 1e-6
    assert q(sqlite_url, f"SELECT min(l1) AS lo FROM trajectory WHERE run_id = {c}")[0]["lo"] >= 0


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("cw", {"alpha": 0.1}, "--alpha does not apply to --attack cw"),
        ("lbfgs", {"kappa": 1.0}, "--kappa does not apply"),
        ("cw", {"lr": -1.0}, "--lr"),
        ("cw", {"search_steps": 0}, "search-steps"),
        ("ifgs", {"epsilon": -1.0}, "epsilon"),
        ("pgd", {}, "unknown attack"),
    ],
)
def test_bad_attack_options(name: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_attack(name, **params)


def test_the_study_presets_are_the_vocabulary_s() -> None:
    from advdb import reproduce, vocabulary

    assert tuple(reproduce.STUDY_PRESETS) == vocabulary.PRESETS


def test_ifgs_takes_the_data_sets_epsilon_unless_given() -> None:
    from advdb.spec import AttackSpec

    digits = AttackSpec(attack="ifgs", params={"iterations": 10}).validate()
    assert digits.to_dict()["epsilon"] == 0.3
    given = AttackSpec(attack="ifgs", params={"iterations": 10, "epsilon": 0.1}).validate()
    assert given.to_dict()["epsilon"] == 0.1
    imagenet = AttackSpec(attack="ifgs", model="resnet18", weights="random", params={"iterations": 10}).validate()
    assert imagenet.to_dict()["epsilon"] == 16 / 255
