"""Curves from stored runs (report curves, report robustness, the web view's curves): checked
against direct SQL on small real attack runs and against exact values of hand-built trajectories."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from advdb.analytics import curves
from advdb.analytics.query import QuerySession, checked_location
from advdb.analytics.reports import build, report_data
from advdb.analytics.selection import MissingDataError, select_runs
from advdb.analytics.statistics import proportion
from advdb.errors import ConfigError
from advdb.runner import AttackSpec, run_attack
from advdb.store import open_store
from advdb.store.catalogue import register_dataset
from advdb.store.ingest import BatchRecord, Ingestor
from advdb.store.runs import create_run, delete_run, set_status
from conftest import small_attack

T = 20


@pytest.fixture(scope="module")
def runs_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    """CE and CE-sign (equal perturbation, 12 images, T = 20) and an IFGS run of the same images."""
    url = f"sqlite:///{tmp_path_factory.mktemp('curves') / 'store.db'}"
    runs = {loss: small_attack(url, loss) for loss in ("ce", "ce-sign")}
    with open_store(url) as store:
        spec = AttackSpec(attack="ifgs", params={"iterations": 8}, n=12, batch_size=6)
        runs["ifgs"] = run_attack(store, spec)
    return url, runs


def _sqlite(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.removeprefix("sqlite:///"))


def _rows(url: str, sql: str, *args: object) -> list[tuple]:
    con = _sqlite(url)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# --- on real attack runs -------------------------------------------------------------------------


def test_iteration_curve_ends_at_the_success_rate_and_only_rises(runs_store: tuple[str, dict[str, int]]) -> None:
    url, runs = runs_store
    table = report_data("curves", db=url)["curves_iterations"]
    per_run = curves.iteration_curves(table)
    assert set(per_run) == {runs["ce"], runs["ce-sign"]}
    for run_id, c in per_run.items():
        reached, at = c["reached"], c["at_target"]
        assert reached.x.tolist() == list(range(T + 1))
        ((succeeded, images),) = _rows(
            url, "SELECT count(first_success_iter), count(*) FROM samples WHERE run_id = ?", run_id
        )
        assert reached.n == images == 12 and reached.count[-1] == succeeded
        assert np.all(np.diff(reached.count) >= 0)
        assert np.all(at.count <= reached.count)
        direct = dict(
            _rows(
                url,
                "SELECT t.iteration, count(*) FROM trajectory t JOIN samples s USING (run_id, image_id) "
                "WHERE t.run_id = ? AND t.pred = s.target GROUP BY 1",
                run_id,
            )
        )
        assert at.count.tolist() == [direct.get(k, 0) for k in range(T + 1)]


def test_epsilon_curve_at_infinity_is_the_share_ever_at_the_target(runs_store: tuple[str, dict[str, int]]) -> None:
    url, runs = runs_store
    data = report_data("curves", db=url)
    eps = curves.epsilon_curves(data["curves_images"])
    for run_id, per_norm in eps.items():
        ((ever,),) = _rows(
            url,
            "SELECT count(DISTINCT t.image_id) FROM trajectory t JOIN samples s USING (run_id, image_id) "
            "WHERE t.run_id = ? AND t.pred = s.target",
            run_id,
        )
        for norm in curves.NORMS:
            assert per_norm[norm].at(np.inf) == ever
            assert np.all(np.diff(per_norm[norm].count) >= 0)
        minima = dict(
            _rows(
                url,
                "SELECT t.image_id, min(t.linf) FROM trajectory t JOIN samples s USING (run_id, image_id) "
                "WHERE t.run_id = ? AND t.pred = s.target GROUP BY 1",
                run_id,
            )
        )
        got = {r["image_id"]: r["min_linf"] for r in data["curves_images"].to_pylist() if r["run_id"] == run_id}
        assert {k: v for k, v in got.items() if v is not None} == pytest.approx(minima)


def test_curves_report_files_and_stored_images(runs_store: tuple[str, dict[str, int]], cli, tmp_path: Path) -> None:  # noqa: ANN001
    url, runs = runs_store
    code, _, err = cli("--db", url, "report", "curves", "--out", str(tmp_path))
    assert code == 0, err
    for ext in ("md", "csv", "tex", "png", "pdf"):
        assert (tmp_path / f"curves.{ext}").stat().st_size > 0
    assert "upper bound" in err and "float trajectory" in err
    with open(tmp_path / "curves.csv") as f:
        rows = {r["Source"]: r for r in csv.DictReader(f)}
    for loss, label in (("ce", "CE"), ("ce-sign", "CE-sign")):
        ((files, still),) = _rows(
            url, "SELECT count(*), sum(still_adversarial) FROM artifacts WHERE run_id = ?", runs[loss]
        )
        e = proportion(still / files, files)
        assert rows[label]["stored files at T"] == f"{e.value:.0%} [{e.lo:.0%}, {e.hi:.0%}] (png)"
        ((ok, n),) = _rows(url, "SELECT count(first_success_iter), count(*) FROM samples WHERE run_id = ?", runs[loss])
        e = proportion(ok / n, n)
        assert rows[label][f"reached by k={T}"] == f"{e.value:.0%} [{e.lo:.0%}, {e.hi:.0%}]"


def test_worst_case_is_the_union_of_the_runs(runs_store: tuple[str, dict[str, int]]) -> None:
    url, runs = runs_store
    with QuerySession(checked_location(url)) as q:
        chosen = curves.robustness_runs(q, select_runs(q))  # the unified runs and the IFGS run, by default
        assert sorted(r["run_id"] for r in chosen) == sorted(runs.values())
        rob = curves.robustness_data(q, chosen)
    firsts = {(r, i): f for r, i, f in _rows(url, "SELECT run_id, image_id, first_success_iter FROM samples")}
    images = sorted({i for _, i in firsts})
    assert rob.image_ids.tolist() == images
    union = [min((firsts[(r, i)] for r in runs.values() if firsts[(r, i)] is not None), default=None) for i in images]
    broken = rob.broken_by_iterations(None)
    assert broken.count[-1] == sum(u is not None for u in union)
    for k in (1, 3, 8, T):
        assert broken.at(k) == sum(u is not None and u <= k for u in union)
    for j, r in enumerate(rob.runs):
        assert rob.broken_by_iterations(j).count[-1] == sum(firsts[(r["run_id"], i)] is not None for i in images)
    robust = report_data("robustness", db=url)["robustness_curves"].to_pylist()
    at_end = [x for x in robust if x["run_id"] == 0 and x["curve"] == "robust_iterations"][-1]
    assert at_end["count"] == len(images) - broken.count[-1]


def test_worst_case_over_runs_named_with_runs(runs_store: tuple[str, dict[str, int]], cli, tmp_path: Path) -> None:  # noqa: ANN001
    url, runs = runs_store
    code, out, err = cli(
        "--db", url, "report", "robustness", "--runs", f"{runs['ce']},{runs['ifgs']}", "--out", str(tmp_path)
    )
    assert code == 0, err
    for ext in ("md", "csv", "tex", "png", "pdf"):
        assert (tmp_path / f"robustness.{ext}").stat().st_size > 0
    with open(tmp_path / "robustness.csv") as f:
        attacks = [r["Attack"] for r in csv.DictReader(f)]
    assert attacks == [f"CE · equal perturbation (run {runs['ce']})", f"IFGS (run {runs['ifgs']})", "any (worst case)"]


# --- hand-built trajectories: exact values -------------------------------------------------------

# Per image: label, target and its rows (pred, L∞, L2, L1) at iterations 0, 1, …
IMAGES = {
    # at the target at 1, 3 and 4; the smallest L∞ there is at 3, the smallest L2 and L1 at 1
    0: (0, 1, [(0, 0.0, 0.0, 0.0), (1, 0.3, 1.2, 5.0), (0, 0.2, 1.0, 4.0), (1, 0.25, 1.5, 6.0), (1, 0.5, 3.0, 9.0)]),
    # never at the target
    1: (2, 3, [(2, 0.0, 0.0, 0.0), (2, 0.1, 0.5, 1.0), (4, 0.2, 0.9, 2.0), (2, 0.3, 1.1, 3.0), (2, 0.4, 2.0, 4.0)]),
    # at the target from 2 on
    2: (5, 6, [(5, 0.0, 0.0, 0.0), (5, 0.05, 0.2, 0.5), (6, 0.1, 0.4, 1.0), (6, 0.15, 0.6, 1.5), (6, 0.2, 0.8, 2.0)]),
}
UP = 1 + 1e-6  # a hair above a value stored as REAL (float32 in the columnar copy)
EXACT = {"linf": {0: 0.25, 2: 0.1}, "l2": {0: 1.2, 2: 0.4}, "l1": {0: 5.0, 2: 1.0}}


def _batch(run_id: int, image_ids: np.ndarray, images: dict[int, tuple]) -> BatchRecord:
    traj: dict[str, list] = {k: [] for k in ("image_id", "iteration", "pred", "linf", "l2", "l1")}
    samples: dict[str, list] = {k: [] for k in ("image_id", "label", "target", "first_success_iter")}
    for idx, (label, target, rows) in images.items():
        for n, (pred, linf, l2, l1) in enumerate(rows):
            for k, v in zip(traj, (image_ids[idx], n, pred, linf, l2, l1), strict=True):
                traj[k].append(v)
        first = next((n for n, r in enumerate(rows) if r[0] == target), None)
        for k, v in zip(samples, (image_ids[idx], label, target, first), strict=True):
            samples[k].append(v)
    m, b = len(traj["image_id"]), len(samples["image_id"])
    t = {k: np.asarray(v) for k, v in traj.items()}
    t.update(search_step=np.zeros(m, np.int16), iteration=t["iteration"].astype(np.int32))
    for k in ("p_init", "p_target", "p_other", "z_init", "z_target", "z_other", "loss", "grad_l2", "step_l2"):
        t[k] = np.zeros(m, np.float32)
    s = {k: np.asarray(v, dtype=np.float64 if k == "first_success_iter" else np.int32) for k, v in samples.items()}
    finals = {k: np.zeros(b, np.float32) for k in ("p_init", "success_l1", "success_l2", "success_linf")}
    finals.update({f"final_{k}": np.zeros(b, np.float32) for k in ("p_target", "z_target", "l1", "l2", "linf")})
    n_rows = np.asarray([len(rows) for _, _, rows in images.values()], np.int32)
    s.update(finals, batch_index=np.zeros(b, np.int32), final_pred=s["target"], n_iterations=n_rows)
    return BatchRecord(run_id=run_id, batch_index=0, trajectory=t, samples=s)


def _hand_built(
    url: str, runs: list[tuple[str, dict[int, tuple]]], *, dataset: str = "hand", files: list[bool] | None = None
) -> list[int]:
    """Finished unified equal-perturbation runs (one per (loss, images)), each of one batch."""
    with open_store(url) as store:
        dataset_id, image_ids = register_dataset(
            store,
            name=dataset,
            kind="synthetic",
            fingerprint=dataset,
            labels=np.zeros(3, np.int64),
            image_shape=[1, 2, 2],
            n_classes=10,
            synthetic=True,
        )
        ids = [
            create_run(
                store,
                kind="attack",
                config={},
                attack="unified",
                loss=loss,
                mode="equal-perturbation",
                iterations=4,
                n_images=len(images),
                dataset_id=dataset_id,
                synthetic=True,
            ).run_id
            for loss, images in runs
        ]
        location = store.location
    with Ingestor(location) as ing:
        for run_id, (_, images) in zip(ids, runs, strict=True):
            chosen = np.asarray([image_ids[i] for i in images], np.int32)
            work_list = {  # the plan, as the runner stores it (the columnar copy follows it)
                "image_id": chosen,
                "position": np.arange(len(chosen), dtype=np.int32),
                "batch_index": np.zeros(len(chosen), np.int32),
                "label": np.asarray([v[0] for v in images.values()], np.int32),
                "target": np.asarray([v[1] for v in images.values()], np.int32),
            }
            ing.insert("run_images", work_list, run_id=run_id)
            batch = _batch(run_id, image_ids, images)
            if files is not None:  # stored PNG files, still the target or not (``artifacts.still_adversarial``)
                k = len(files)
                batch.artifacts = {
                    "image_id": chosen[:k],
                    "path": [f"{run_id}/{i}.png" for i in chosen[:k]],
                    "format": ["png"] * k,
                    "sha256": ["0" * 64] * k,
                    "n_bytes": np.full(k, 100, np.int32),
                    "saved_pred": np.where(files, work_list["target"][:k], work_list["label"][:k]).astype(np.int32),
                    "still_adversarial": np.asarray(files),
                }
            ing.commit(batch)
    with open_store(url) as store:
        for r in ids:
            set_status(store, r, "finished")
    return ids


def test_hand_built_trajectory_gives_the_exact_minimal_perturbations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    (run_id,) = _hand_built(url, [("ce", IMAGES)])
    data = report_data("curves", db=url)
    got = {r["image_id"]: r for r in data["curves_images"].to_pylist()}
    ids = sorted(got)
    for norm, exact in EXACT.items():
        assert {ids.index(i): v[f"min_{norm}"] for i, v in got.items() if v[f"min_{norm}"] is not None} == (
            pytest.approx(exact)
        )
        c = curves.epsilon_curves(data["curves_images"])[run_id][norm]
        lo, hi = sorted(exact.values())  # stored as REAL: at ε a hair above the value
        assert [c.at(lo * 0.99), c.at(lo * UP), c.at(hi * 0.99), c.at(hi * UP), c.at(np.inf)] == [0, 1, 1, 2, 2]
        assert c.n == 3 and c.reaches(0.5) == pytest.approx(hi)
    its = curves.iteration_curves(data["curves_iterations"])[run_id]
    assert its["reached"].count.tolist() == [0, 1, 2, 2, 2]
    assert its["at_target"].count.tolist() == [0, 1, 1, 2, 2]


def _derived(url: str, *, columnar: bool) -> dict[str, list[tuple]]:
    """``target_minima`` and ``target_counts`` as a session sees them (the copy's tables, or computed)."""
    with QuerySession(checked_location(url), columnar=columnar) as q:
        return {
            "minima": [tuple(r.values()) for r in q.query("SELECT * FROM target_minima ORDER BY 1, 2").to_pylist()],
            "counts": [tuple(r.values()) for r in q.query("SELECT * FROM target_counts ORDER BY 1, 2").to_pylist()],
        }


def _same(copied: dict[str, list[tuple]], direct: dict[str, list[tuple]]) -> None:
    """The copy's tables equal the direct aggregate: counts exactly, minima to float32 (the copy's REAL)."""
    assert copied["counts"] == direct["counts"]
    assert [r[:3] for r in copied["minima"]] == [r[:3] for r in direct["minima"]]
    for a, b in zip(copied["minima"], direct["minima"], strict=True):
        assert a[3:] == pytest.approx(b[3:], rel=1e-6)


def test_the_copy_keeps_each_image_minima_and_iteration_counts_as_runs_come_and_go(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'derived.db'}"
    (first,) = _hand_built(url, [("ce", IMAGES)], dataset="first")
    made = _derived(url, columnar=True)  # builds the copy
    ids = sorted({r[1] for r in made["minima"]})
    exact = [(first, ids[0], 3, 0.25, 1.2, 5.0), (first, ids[1], 3, 0.1, 0.4, 1.0)]  # images 0 and 2: 3 rows at t
    assert [(*r[:3], *(round(v, 6) for v in r[3:])) for r in made["minima"]] == exact
    assert made["counts"] == [(first, 1, 1, 0), (first, 2, 1, 0), (first, 3, 2, 0), (first, 4, 2, 2)]
    _same(made, _derived(url, columnar=False))
    (second,) = _hand_built(url, [("logit", IMAGES)], dataset="second")  # a refresh adds it
    grown = _derived(url, columnar=True)
    _same(grown, _derived(url, columnar=False))
    assert {r[0] for r in grown["minima"]} == {first, second}
    with open_store(url) as store:
        delete_run(store, first)  # a refresh drops it
    left = _derived(url, columnar=True)
    _same(left, _derived(url, columnar=False))
    assert {r[0] for r in left["minima"] + left["counts"]} == {second}


def test_an_early_stop_keeps_the_image_where_its_last_row_left_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'early.db'}"
    images = {0: IMAGES[0], 2: (5, 6, IMAGES[2][2][:3])}  # image 2 stops at iteration 2, at the target
    (run_id,) = _hand_built(url, [("ce", images)])
    its = curves.iteration_curves(report_data("curves", db=url)["curves_iterations"])[run_id]
    assert its["at_target"].count.tolist() == [0, 1, 1, 2, 2]
    assert its["reached"].count.tolist() == [0, 1, 2, 2, 2]


def test_stored_files_are_shown_beside_the_float_trajectory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'files.db'}"
    (run_id,) = _hand_built(url, [("ce", IMAGES)], files=[True, False, True])  # rounding undid one success
    with QuerySession(checked_location(url)) as q:
        out = build(q, "curves")
    cols, rows = out.display
    row = dict(zip(cols, rows[0], strict=True))
    assert row["stored files at T"].startswith("67% [") and row["stored files at T"].endswith("(png)")
    assert row["at target at T"].startswith("67% [")  # the float trajectory: images 0 and 2 at T
    stored = out.data["curves_stored"].to_pylist()
    assert stored == [
        {"run_id": run_id, "images": 3, "returned_at_target": 3, "files": 3, "files_at_target": 2, "formats": "png"}
    ]
    assert any("100.0% of the images it returned" in n and "66.7% of its stored png files" in n for n in out.notes)


def test_worst_case_of_two_hand_built_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    other = {  # breaks image 1 at iteration 4 with L∞ 0.4, and image 0 only at 4 with L∞ 0.5
        0: (0, 1, [(0, 0.0, 0.0, 0.0), (0, 0.1, 1.0, 1.0), (0, 0.2, 1.0, 1.0), (0, 0.3, 1.0, 1.0), (1, 0.5, 2.0, 8.0)]),
        1: (2, 3, [(2, 0.0, 0.0, 0.0), (2, 0.1, 0.5, 1.0), (2, 0.2, 0.9, 2.0), (2, 0.3, 1.1, 3.0), (3, 0.4, 2.0, 4.0)]),
        2: IMAGES[2][:2] + ([(5, 0.0, 0.0, 0.0)] * 5,),  # never
    }
    a, b = _hand_built(url, [("ce", IMAGES), ("logit", other)])
    with QuerySession(checked_location(url)) as q:
        rob = curves.robustness_data(q, curves.robustness_runs(q, None, [a, b]))
    assert rob.broken_by_iterations(None).count.tolist() == [0, 1, 2, 2, 3]  # image 0 at 1, 2 at 2, 1 at 4
    assert rob.broken_by_iterations(0).count.tolist() == [0, 1, 2, 2, 2]
    assert rob.broken_by_iterations(1).count.tolist() == [0, 0, 0, 0, 2]
    linf = rob.broken_by_eps("linf", None)
    assert [linf.at(0.1 * UP), linf.at(0.25 * UP), linf.at(0.4 * UP), linf.at(np.inf)] == [1, 2, 3, 3]
    first, alone = rob.first_to_break()
    assert first.tolist() == [2, 1] and alone.tolist() == [1, 1]
    assert rob.targets_differ == 0


def test_runs_on_different_datasets_are_an_error(tmp_path: Path, cli) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    (a,) = _hand_built(url, [("ce", IMAGES)], dataset="one")
    (b,) = _hand_built(url, [("ce", IMAGES)], dataset="two")
    with QuerySession(checked_location(url)) as q, pytest.raises(ConfigError, match="same images of one classifier"):
        curves.robustness_runs(q, None, [a, b])
    code, _, err = cli("--db", url, "report", "robustness", "--runs", f"{a},{b}", "--out", str(tmp_path))
    assert code == ConfigError.exit_code and "same images of one classifier" in err


def test_missing_runs_name_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with QuerySession(checked_location(url)) as q:
        for name in ("curves", "robustness"):
            with pytest.raises(MissingDataError, match="advdb attack"):
                build(q, name)
        assert curves.curve_summary(q, select_runs(q)) == []


# --- numbers and words ---------------------------------------------------------------------------


def test_wilson_band_matches_the_statistics_module() -> None:
    k = np.array([0, 3, 7, 12])
    lo, hi = curves.wilson(k, 12)
    for i, v in enumerate(k):
        e = proportion(v / 12, 12)
        assert (lo[i], hi[i]) == pytest.approx((e.lo, e.hi))


def test_table_budgets() -> None:
    assert curves.iteration_budgets(500) == [50, 100, 500]
    assert curves.iteration_budgets(20) == [2, 5, 20]
    assert curves.eps_label("linf", 8 / 255) == "8/255" and curves.eps_label("l2", 0.25) == "0.25"
    picks = curves.eps_budgets("linf", [np.array([2 / 255, 4 / 255, 8 / 255, 16 / 255, np.inf])])
    assert picks == [4 / 255, 8 / 255]  # near the quartiles of the successes, on the ladder
    assert curves.robustness_budgets([25, 25]) == [2, 5, 25]
    assert curves.robustness_budgets([25, 600]) == [2, 25, 50, 600]


def test_curve_summary_sentences(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'summary.db'}"
    slow = {
        i: (label, target, [(label, *r[1:]) for r in rows[:3]] + list(rows[3:]))
        for i, (label, target, rows) in IMAGES.items()
    }
    _hand_built(url, [("ce", slow), ("ce-sign", IMAGES)])  # CE-sign reaches image 2 at 2, CE only at 3
    with QuerySession(checked_location(url)) as q:
        lines = curves.curve_summary(q, select_runs(q))
    assert len(lines) == 2
    assert "under equal perturbation CE-sign is ahead of CE from k = 1 on (33.3% vs 0.0% there" in lines[0]
    assert "equal perturbation: CE 0.25 / 1.5, CE-sign 0.25 / 1.2" in lines[1]
