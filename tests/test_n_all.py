"""``--n all``: every image the classifier gets right, however many that is, counted before any
attack and stated in the run (the digits CNN gets all but a few of the 899 held-out digits)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from advdb.data import create_dataset
from advdb.errors import ConfigError, DataError
from advdb.models import create_classifier
from advdb.planning import ALL, plan_targets, predict
from advdb.runner import AttackSpec, join_attack, run_attack
from advdb.store import open_store
from advdb.store.runs import get_run, run_counts

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def correct() -> int:
    """How many held-out digits the digits CNN classifies correctly, counted without the planner."""
    clf, ds = create_classifier("digits-cnn"), create_dataset("digits")
    pred, _ = predict(clf, ds, np.arange(len(ds)), CPU, 512)
    assert ds.labels is not None
    n = int((pred == ds.labels).sum())
    assert 0 < n < len(ds)  # the test needs some images misclassified
    return n


def spec(**kw: Any) -> AttackSpec:
    params = {"loss": "ce", "mode": "equal-perturbation", "iterations": 1}
    return AttackSpec(params=params, n=kw.pop("n", ALL), batch_size=512, save_images=False, **kw)


class Events:
    """A notice sink and attack progress that record what happened in which order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def notice(self, line: str) -> None:
        self.seen.append(("notice", line))

    def start(self, *, run_id: int, label: str, total_images: int, done_images: int, iterations: int) -> None:
        self.seen.append(("start", total_images))

    def advance(self, images: int) -> None:
        self.seen.append(("advance", images))


def test_n_all_attacks_every_correctly_classified_image(sqlite_url: str, correct: int) -> None:
    """Planned by one process (which says how many it found), attacked by a worker joining it."""
    events = Events()
    with open_store(sqlite_url) as store:
        run_id = run_attack(store, spec(), plan_only=True, notice=events.notice)
        assert get_run(store, run_id).status == "planned"
        join_attack(store, run_id, progress=events)
        run, counts = get_run(store, run_id), run_counts(store, run_id)
    assert run.status == "finished" and run.n_images == counts.samples == correct
    assert run.config["n"] == "all" and run.config["resolved"]["n"] == correct
    assert AttackSpec.from_config(run.config).to_config() == spec().to_config()  # what `reproduce` matches on
    kind, line = events.seen[0]
    assert kind == "notice" and f"{correct:,} images" in str(line) and "of the 899 images" in str(line)
    assert events.seen[1] == ("start", correct)


def test_plans_for_all_and_for_a_number_are_cached_apart(correct: int) -> None:
    clf, ds = create_classifier("digits-cnn"), create_dataset("digits")
    opts: dict[str, Any] = {"seed": 3, "targets": "random", "device": CPU, "batch_size": 256}
    every, _ = plan_targets(clf, ds, n=ALL, **opts)
    few, _ = plan_targets(clf, ds, n=5, **opts)
    again, _ = plan_targets(clf, ds, n=ALL, **opts)
    assert len(every.indices) == len(again.indices) == correct and len(few.indices) == 5
    assert np.array_equal(few.indices, every.indices[:5]) and np.array_equal(few.targets, every.targets[:5])
    assert every.candidates == len(ds)


def test_the_cli_says_how_many_before_attacking(sqlite_url: str, cli, correct: int) -> None:  # noqa: ANN001
    code, out, err = cli(
        "--db", sqlite_url, "attack", "--n", "all", "-T", "1", "-b", "512", "--no-save-images", "--json"
    )
    assert code == 0, err
    assert f"planned {correct:,} images (--n all): digits-cnn classifies {correct:,} of the 899 images in digits" in err
    summary = json.loads(out)
    assert summary["images"] == correct
    code, out, _ = cli("--db", sqlite_url, "runs", "show", str(summary["run_id"]), "--json")
    shown = json.loads(out)
    assert shown["n_images"] == shown["config"]["resolved"]["n"] == correct and shown["config"]["n"] == "all"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--n", "{more}"], DataError.exit_code, "use --n {correct} or fewer"),
        (["--n", "some"], ConfigError.exit_code, "--n must be a number of images or 'all'"),
        (["--n", "0"], ConfigError.exit_code, "--n must be"),
        (
            ["--n", "all", "--model", "resnet18", "--weights", "random", "--dataset", "synthetic"],
            ConfigError.exit_code,
            "--n all needs a data set of fixed size",
        ),
    ],
)
def test_impossible_counts_are_one_line(
    sqlite_url: str, cli, correct: int, args: list[str], code: int, message: str
) -> None:  # noqa: ANN001
    args = [a.format(more=correct + 1) for a in args]
    got, _, err = cli("--db", sqlite_url, "attack", "-T", "1", "-b", "512", "--no-save-images", *args)
    assert got == code and message.format(correct=correct) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_library_refuses_what_is_not_a_count() -> None:
    for n in (0, -3, True, "some", 2.5):
        with pytest.raises(ConfigError, match="--n must be"):
            spec(n=n).validate()
