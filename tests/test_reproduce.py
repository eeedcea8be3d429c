"""`advdb reproduce`: the whole study, skipping what the store already holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from advdb import reproduce
from advdb.errors import ConfigError
from advdb.store import open_store
from advdb.store.runs import list_runs


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
    assert all(f.verdict in ("agrees", "differs", "inconclusive") for f in findings)  # every finding has its data
    assert all(f.comparisons and all("[" in c for c in f.comparisons[:1]) for f in findings)  # with intervals
    assert "ce" in findings[0].measured and "CW spends" in findings[4].measured
