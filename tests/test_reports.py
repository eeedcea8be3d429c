"""Reports: every table and figure from the store, checked against independent queries."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from advdb.analytics.query import QuerySession, checked_location
from advdb.analytics.reports import report_data
from advdb.errors import NotFoundError
from advdb.runner import AttackSpec, run_attack
from advdb.store import open_store
from advdb.store.runs import create_run, delete_run, set_status

SOURCES = ("ce", "ce-sign", "logit", "m-logit")
MODES = ("equal-multiplier", "equal-perturbation")
T = 25


@pytest.fixture(scope="module")
def paper_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The eight loss-source runs on the digits default, small."""
    path = tmp_path_factory.mktemp("reports") / "store.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        for mode in MODES:
            for loss in SOURCES:
                params = {"loss": loss, "mode": mode, "iterations": T, "alpha": 0.02, "tau": 0.25}
                run_attack(store, AttackSpec(params=params, n=24, batch_size=12))
    return url


def _sqlite(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.removeprefix("sqlite:///"))


def _csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_all_writes_every_available_report(paper_store: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, out, err = cli("--db", paper_store, "report", "all", "--out", str(tmp_path))
    assert code == 0, err
    for name in ("table1", "subspaces"):
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    for name in ("fig1", "fig2", "fig3", "fig4", "fig5"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    assert "skipped table2" in err and "advdb retrain" in err
    assert "skipped fig6" in err and "advdb circles" in err
    assert r"\toprule" in (tmp_path / "table1.tex").read_text()


def test_table1_cells_match_direct_sql(paper_store: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = cli("--db", paper_store, "report", "table1", "--out", str(tmp_path))
    assert code == 0, err
    rows = {r["Source"]: r for r in _csv(tmp_path / "table1.csv")}
    con = _sqlite(paper_store)
    for loss, label in (("ce", "CE"), ("m-logit", "M-logit")):
        for mode, col in (("equal-perturbation", "Equal perturbation"), ("equal-multiplier", "Equal multiplier")):
            values = [
                v
                for (v,) in con.execute(
                    "SELECT s.first_success_iter FROM samples s JOIN runs r USING (run_id) "
                    "WHERE r.loss = ? AND r.mode = ? AND s.first_success_iter IS NOT NULL",
                    (loss, mode),
                )
            ]
            mean, std = np.mean(values), np.std(values, ddof=1)
            half = 1.96 * std / np.sqrt(len(values))
            expected = f"{mean:.1f} ± {std:.1f} [{mean - half:.1f}, {mean + half:.1f}]"
            assert rows[label][f"{col}: iterations"] == expected
            (secs,) = con.execute(
                "SELECT sum(attack_seconds) FROM batches JOIN runs USING (run_id) WHERE loss = ? AND mode = ?",
                (loss, mode),
            ).fetchone()
            assert rows[label][f"{col}: time (s)"] == f"{secs:.1f}"
    con.close()


def test_subspace_shares_match_a_numpy_count(paper_store: str) -> None:
    data = report_data("subspaces", db=paper_store, confidence=0.8)["subspaces"].to_pylist()
    con = _sqlite(paper_store)
    for r in data:
        rows = np.array(
            con.execute("SELECT p_init, p_target, p_other FROM trajectory WHERE run_id = ?", (r["run_id"],)).fetchall()
        )
        s3 = rows[:, 1] >= 0.8
        s1 = ~s3 & (np.maximum(rows[:, 0], rows[:, 2]) >= 0.8)
        assert r["share_s3"] == pytest.approx(s3.mean())
        assert r["share_s1"] == pytest.approx(s1.mean())
        assert r["share_s1"] + r["share_s2"] + r["share_s3"] == pytest.approx(1.0)
    con.close()


def test_figure_data_matches_direct_sql(paper_store: str) -> None:
    data = report_data("fig4", db=paper_store)["trajectory_means"].to_pylist()
    con = _sqlite(paper_store)
    pick = [r for r in data if r["iteration"] == 7][:3]
    for r in pick:
        (step, grad, n) = con.execute(
            "SELECT avg(step_l2), avg(grad_l2), count(*) FROM trajectory WHERE run_id = ? AND iteration = 7",
            (r["run_id"],),
        ).fetchone()
        assert (
            r["step_l2"] == pytest.approx(step, rel=1e-5)
            and r["grad_l2"] == pytest.approx(grad, rel=1e-5)
            and r["images"] == n
        )
    con.close()
    means = report_data("fig1", db=paper_store)["trajectory_means"]
    assert means.num_rows == T + 1


def test_reports_agree_with_and_without_the_columnar_copy(paper_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = report_data("fig3", db=paper_store)
    monkeypatch.setenv("ADVDB_COLUMNAR", "0")
    slow = report_data("fig3", db=paper_store)
    for name in fast:
        a, b = fast[name].to_pylist(), slow[name].to_pylist()
        assert len(a) == len(b)
        for ra, rb in zip(a, b, strict=True):
            assert ra.keys() == rb.keys()
            for k in ra:
                assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-7), (name, k)


def test_runs_option_and_missing_data(paper_store: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, _ = cli("--db", paper_store, "report", "table1", "--runs", "1,2", "--out", str(tmp_path))
    assert code == 0
    rows = _csv(tmp_path / "table1.csv")
    assert rows[2]["Equal multiplier: iterations"] == "–"  # logit was not chosen
    code, _, err = cli("--db", paper_store, "report", "table1", "--runs", "999")
    assert code == NotFoundError.exit_code and "999" in err
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    code, _, err = cli("--db", empty, "report", "fig3")
    assert code == NotFoundError.exit_code
    assert "advdb attack --loss ce --mode equal-perturbation" in err and "Traceback" not in err
    code, _, err = cli("--db", empty, "report", "all")
    assert code == NotFoundError.exit_code and "advdb attack" in err
    code, _, err = cli("--db", paper_store, "report", "fig9")
    assert code == 2 and "unknown report" in err


def test_detector_and_circle_tables(tmp_path: Path) -> None:
    """Tables II/III and Fig. 6 read what detector and circles runs store."""
    from advdb.store.models import CircleGrid, DetectorResult

    url = f"sqlite:///{tmp_path / 'det.db'}"
    with open_store(url) as store:
        src = {
            loss: create_run(store, kind="attack", config={}, loss=loss, mode="equal-perturbation").run_id
            for loss in ("ce", "logit")
        }
        for r in src.values():
            set_status(store, r, "finished")
        acc = {("resnet18", "ce"): 0.75, ("resnet18", "logit"): 0.8, ("alexnet", "ce"): 0.6}
        for (arch, loss), a in acc.items():
            d = create_run(store, kind="detector", config={"arch": arch, "setting": "single-source"})
            set_status(store, d.run_id, "finished")
            with store.session() as s:
                s.add(
                    DetectorResult(
                        run_id=d.run_id,
                        group_name=f"source:{src[loss]}",
                        source_run_id=src[loss],
                        n_images=10,
                        accuracy=a,
                        epoch=1,
                    )
                )
                s.add(
                    DetectorResult(
                        run_id=d.run_id, group_name="overall", source_run_id=None, n_images=20, accuracy=a, epoch=1
                    )
                )
        allsrc = create_run(store, kind="detector", config={"arch": "resnet18", "setting": "all-sources"})
        set_status(store, allsrc.run_id, "finished")
        circ = create_run(store, kind="circles", config={})
        set_status(store, circ.run_id, "finished")
        with store.session() as s:
            for g, a in (("source:1", 0.5), ("adversarial", 0.55), ("genuine", 0.9), ("overall", 0.7)):
                s.add(
                    DetectorResult(
                        run_id=allsrc.run_id,
                        group_name=g,
                        source_run_id=src["ce"] if g == "source:1" else None,
                        n_images=5,
                        accuracy=a,
                        epoch=2,
                    )
                )
            for loss in ("ce", "logit"):
                for ix in range(3):
                    for iy in range(3):
                        s.add(
                            CircleGrid(
                                run_id=circ.run_id,
                                loss=loss,
                                ix=ix,
                                iy=iy,
                                x=ix * 0.5,
                                y=iy * 0.5,
                                grad_norm=ix + iy + 0.1,
                                pred=int(ix > 1),
                                p_target=0.5,
                            )
                        )
    t2 = {(r["source"], r["arch"]): r["accuracy"] for r in report_data("table2", db=url)["table2"].to_pylist()}
    assert t2 == {("ce", "resnet18"): 0.75, ("logit", "resnet18"): 0.8, ("ce", "alexnet"): 0.6}
    t3 = {r["group"]: r["accuracy"] for r in report_data("table3", db=url)["table3"].to_pylist()}
    assert t3 == {"ce": 0.5, "adversarial": 0.55, "genuine": 0.9, "overall": 0.7}
    assert report_data("fig6", db=url)["fig6"].num_rows == 18


def test_columnar_copy_is_never_stale(store_url: str) -> None:
    def counts() -> tuple[int, int]:
        with QuerySession(checked_location(store_url)) as q:
            a = q.query("SELECT count(*) AS n FROM trajectory").to_pylist()[0]["n"]
            b = q.con.execute("SELECT count(*) FROM store.trajectory").fetchone()[0]  # the store itself
            assert q.refresh is not None
        return a, b

    spec = AttackSpec(params={"loss": "ce", "iterations": 5}, n=12, batch_size=6)
    with open_store(store_url) as store:
        first = run_attack(store, spec)
    assert counts() == (12 * 6, 12 * 6)
    with open_store(store_url) as store:
        second = run_attack(store, spec)
    assert counts() == (24 * 6, 24 * 6)
    with open_store(store_url) as store:
        delete_run(store, first)
        third = run_attack(store, spec)  # on SQLite the id may be reused
    assert counts() == (24 * 6, 24 * 6)
    with QuerySession(checked_location(store_url)) as q:
        per_run = q.query(
            "SELECT run_id, count(*) AS n, sum(l2) AS s FROM trajectory GROUP BY 1 ORDER BY 1"
        ).to_pylist()
        direct = [  # the store's own rows, through the scanner
            {"run_id": r, "n": n, "s": t}
            for r, n, t in q.con.execute(
                "SELECT run_id, count(*), sum(l2) FROM store.trajectory GROUP BY 1 ORDER BY 1"
            ).fetchall()
        ]
    assert (
        [(r["run_id"], r["n"]) for r in per_run]
        == [(r["run_id"], r["n"]) for r in direct]
        == sorted([(second, 72), (third, 72)])
    )
    for a, b in zip(per_run, direct, strict=True):
        assert a["s"] == pytest.approx(b["s"], rel=1e-6)


def test_margins_match_direct_sql(paper_store: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = cli("--db", paper_store, "report", "margins", "--out", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "margins.csv").exists()
    rows = {(r["loss"], r["mode"]): r for r in report_data("margins", db=paper_store)["margins"].to_pylist()}
    assert rows
    con = _sqlite(paper_store)
    for (loss, mode), row in rows.items():
        margins = [
            zt - max(zy, zo)
            for zt, zy, zo in con.execute(
                "SELECT t.z_target, t.z_init, t.z_other FROM trajectory t JOIN runs r USING (run_id) "
                "WHERE r.loss = ? AND r.mode = ? AND r.attack = 'unified' AND t.iteration = r.iterations",
                (loss, mode),
            )
        ]
        assert float(row["margin_mean"]) == pytest.approx(np.mean(margins), rel=1e-5, abs=1e-6)
        assert float(row["target_at_end"]) == pytest.approx(np.mean(np.array(margins) > 0))


def test_transfer_figure_draws_rates_at_the_ceiling() -> None:
    """250 of 250 transferred: the Wilson bound misses 1.0 by rounding (hi − value = −2e−16), which
    matplotlib refused as a negative error bar and ended the imagenet-sample study's reports."""
    from advdb.analytics.reports import transfer_figure
    from advdb.analytics.selection import RunSelection

    sel = RunSelection(runs={("ce", "equal-perturbation"): 1, ("logit", "equal-perturbation"): 2})
    rows = [
        {"mode": "equal-perturbation", "loss": loss, "model": "m", "images": 250, "targeted_n": k, "untargeted": 1.0}
        for loss, k in (("ce", 250), ("logit", 0))
    ]
    figure = transfer_figure(rows, ["m"], sel)
    assert len(figure.axes[0].patches) == 2
