"""`advdb reproduce`: the whole study, skipping what the store already holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from advdb import reproduce
from advdb.errors import ConfigError
from advdb.store import open_store
from advdb.store.runs import list_runs
from test_findings import check_comparisons


@pytest.fixture(scope="module")
def tiny() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(
            reproduce.STUDY_PRESETS,
            "tiny",
            reproduce.Preset(
                n=16,
                iterations=12,
                batch_size=16,
                full_attack_n=8,
                detector_epochs=1,
                circles_n=10,
                circles_iterations=10,
            ),
        )
        yield "tiny"


@pytest.fixture(scope="module")
def study(tiny: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, reproduce.StudyResult, list]:
    """The tiny study, run once for the module: (store URL, its result, the steps' states)."""
    from advdb import runner

    url = f"sqlite:///{tmp_path_factory.mktemp('study') / 'store.db'}"
    first = Steps()

    class CountedWriter(runner.BackgroundWriter):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            WRITERS.append(1)
            super().__init__(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp, open_store(url) as store:
        mp.setattr(runner, "BackgroundWriter", CountedWriter)
        result = reproduce.run_study(store, tiny, progress=first)
    return url, result, first.states


WRITERS: list[int] = []  # writer processes the study started


class Steps:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    def step(self, *, index: int, total: int, label: str, state: str) -> None:
        if state != "start":
            self.states.append((label, state))


def test_study_runs_once_and_continues(study: tuple[str, reproduce.StudyResult, list], tiny: str) -> None:
    sqlite_url, result, _ = study
    with open_store(sqlite_url) as store:
        kinds = sorted(r.kind for r in list_runs(store))
    assert len(result.runs) == 17 + 2 + 5 and not result.skipped
    assert len(WRITERS) == 1 + 4  # one for the study's eleven attacks, one per circles attack
    assert kinds.count("attack") == 8 + 3 + 4 and kinds.count("detector") == 5 and kinds.count("circles") == 1
    assert kinds.count("transfer") == 2 and kinds.count("defense") == 5  # onto the two other digits models
    # a detector of one source was trained on that source's run
    with open_store(sqlite_url) as store:
        det = [r for r in list_runs(store, kind="detector") if r.config["setting"] == "single-source"]
        assert {tuple(r.config["sources"]) for r in det} == {
            (result.runs[f"{loss} equal-perturbation"],) for loss in ("ce", "ce-sign", "logit", "m-logit")
        }
        second = Steps()
        again = reproduce.run_study(store, tiny, progress=second)
        assert len(list_runs(store)) == len(kinds)  # nothing new
    assert all(state == "skipped" for _, state in second.states) and again.runs == result.runs


def test_study_resumes_an_interrupted_step(study: tuple[str, reproduce.StudyResult, list], tiny: str) -> None:
    """A study stopped inside a step (Ctrl-C in the middle of its attack) resumes that step, and only it."""
    from advdb.attacks.ifgs import IFGS
    from advdb.errors import InterruptedRun
    from advdb.store.runs import delete_run, get_run

    url, result, _ = study
    ifgs = result.runs["ifgs"]
    rows = "SELECT count(*) AS n, count(DISTINCT (image_id, iteration)) AS k FROM trajectory WHERE run_id = {}"
    expected = _q(url, rows.format(ifgs))
    with open_store(url) as store:
        delete_run(store, ifgs)

        def stopped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise KeyboardInterrupt

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(IFGS, "run", stopped)
            with pytest.raises(InterruptedRun):
                reproduce.run_study(store, tiny)
        stopped_id = max(r.run_id for r in list_runs(store, kind="attack"))
        assert get_run(store, stopped_id).status == "interrupted" and stopped_id != ifgs
        third = Steps()
        again = reproduce.run_study(store, tiny, progress=third)
        assert get_run(store, stopped_id).status == "finished"
    assert [s for s in third.states if s[1] != "skipped"] == [("ifgs", "resumed")]
    assert again.runs == {**result.runs, "ifgs": stopped_id}
    assert _q(url, rows.format(stopped_id)) == expected and expected[0]["n"] > 0


def _q(url: str, sql: str) -> list[dict]:
    from advdb.analytics import run_sql
    from advdb.analytics.query import checked_location

    return run_sql(checked_location(url), sql).to_pylist()


def test_imagenet_preset_needs_its_data() -> None:
    with pytest.raises(ConfigError, match="--data-dir"):
        reproduce.plan_study(None, "imagenet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown preset"):
        reproduce.plan_study(None, "cifar")  # type: ignore[arg-type]


def test_findings_summary(study: tuple[str, reproduce.StudyResult, list]) -> None:
    from advdb.analytics.findings import measure_findings
    from advdb.analytics.query import QuerySession, checked_location

    sqlite_url = study[0]
    with QuerySession(checked_location(sqlite_url)) as q:
        findings = measure_findings(q)
    assert [f.number for f in findings] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(f.verdict in ("agrees", "differs", "inconclusive", "no data") for f in findings)
    assert sum(f.verdict != "no data" for f in findings) >= 7  # (ce-sign may reach no target in T = 12)
    check_comparisons(findings)  # each comparison judged in the paper's direction, each verdict their combination
    assert all(f.comparisons and all("[" in c for c in f.comparisons[:1]) for f in findings)  # with intervals
    assert "ce" in findings[0].measured and "CW spends" in findings[4].measured
