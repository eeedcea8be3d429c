"""The 2-D circles experiment: recorded attacks and the gradient grid of Fig. 6."""

from __future__ import annotations

import numpy as np

from advdb.analytics.query import QuerySession, checked_location
from advdb.circles import CirclesSpec, run_circles
from advdb.data.circles import INNER, OUTER
from advdb.store import open_store
from advdb.store.runs import get_run


def test_circles_experiment(sqlite_url: str, cli, tmp_path) -> None:  # noqa: ANN001
    with open_store(sqlite_url) as store:
        run_id = run_circles(store, CirclesSpec(n=30, iterations=40, grid=41))
        run = get_run(store, run_id)
    assert run.kind == "circles" and run.status == "finished" and run.config["test_accuracy"] > 0.95
    attack_runs = run.config["attack_runs"]
    assert sorted(attack_runs) == ["ce", "ce-sign", "logit", "m-logit"]
    with QuerySession(checked_location(sqlite_url)) as q:
        grid = q.query(
            "SELECT loss, grad_norm, p_target, pred FROM circle_grid WHERE run_id = $r", {"r": run_id}
        ).to_pydict()
        per_image = q.query(
            "SELECT r.loss, count(*) AS rows, count(DISTINCT t.image_id) AS images, min(s.label) AS lo, "
            "max(s.label) AS hi, "
            "avg((s.final_pred = s.target)::INT) AS reached FROM trajectory t JOIN runs r USING (run_id) "
            "JOIN samples s USING (run_id, image_id) WHERE list_contains($ids, t.run_id) GROUP BY r.loss",
            {"ids": list(attack_runs.values())},
        ).to_pylist()
    for r in per_image:  # outer-ring points moved towards the inner class, 41 rows each
        assert (r["images"], r["rows"], r["lo"], r["hi"]) == (30, 30 * 41, OUTER, OUTER)
    assert {r["loss"]: r["reached"] for r in per_image}["logit"] > 0.9
    loss = np.array(grid["loss"])
    norm, p_in = np.array(grid["grad_norm"]), np.array(grid["p_target"])
    assert len(norm) == 4 * 41 * 41
    deep = p_in > 0.999  # confidently the target (S3)
    assert deep.sum() > 20 and set(np.array(grid["pred"])[deep]) == {INNER}
    ce, logit, mlogit = (norm[(loss == s) & deep] for s in ("ce", "logit", "m-logit"))
    # Theorem IV.2: the CE gradient vanishes deep inside the target class; the logit one does not
    assert np.median(ce) < 1e-2 * np.median(logit)
    assert np.median(logit) > 1.0
    assert (mlogit == 0).all()  # κ = 0: flat once z_t leads
    code, _, err = cli("--db", sqlite_url, "report", "fig6", "--out", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "fig6.png").exists()
