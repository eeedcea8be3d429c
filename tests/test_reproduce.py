"""`advdb reproduce`: the whole study, skipping what the store already holds."""

from __future__ import annotations

import pytest

from advdb import reproduce
from advdb.errors import ConfigError
from advdb.store import open_store
from advdb.store.runs import list_runs


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(
        reproduce.STUDY_PRESETS,
        "tiny",
        reproduce.Preset(
            n=16, iterations=12, batch_size=16, full_attack_n=8, detector_epochs=1, circles_n=10, circles_iterations=10
        ),
    )
    return "tiny"


class Steps:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    def step(self, *, index: int, total: int, label: str, state: str) -> None:
        if state != "start":
            self.states.append((label, state))


def test_study_runs_once_and_continues(sqlite_url: str, tiny: str, cli, tmp_path) -> None:  # noqa: ANN001
    first = Steps()
    with open_store(sqlite_url) as store:
        result = reproduce.run_study(store, tiny, progress=first)
        kinds = sorted(r.kind for r in list_runs(store))
    assert len(result.runs) == 17 and not result.skipped
    assert kinds.count("attack") == 8 + 3 + 4 and kinds.count("detector") == 5 and kinds.count("circles") == 1
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


def test_findings_summary(sqlite_url: str, tiny: str) -> None:
    from advdb.analytics.findings import measure_findings
    from advdb.analytics.query import QuerySession, checked_location

    with open_store(sqlite_url) as store:
        reproduce.run_study(store, tiny)
    with QuerySession(checked_location(sqlite_url)) as q:
        findings = measure_findings(q)
    assert [f.number for f in findings] == [1, 2, 3, 4, 5, 6]
    assert all(f.agrees is not None for f in findings)  # every finding has its data
    assert "ce" in findings[0].measured and "CW spends" in findings[4].measured


def test_the_presets_are_the_vocabulary_s() -> None:
    from advdb.vocabulary import PRESETS

    assert tuple(reproduce.STUDY_PRESETS) == PRESETS
