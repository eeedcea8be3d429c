"""Detector retraining on stored adversarial images: splits, balance, resume, integrity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from sqlalchemy import select

from advdb.detectors import DetectorSpec, build_items, group_accuracies, resume_detector, split, train_detector
from advdb.errors import ConfigError, DataError, InterruptedRun
from advdb.runner import AttackSpec, run_attack
from advdb.store import open_store
from advdb.store.models import Artifact, DetectorEpoch, DetectorResult
from advdb.store.runs import get_run, list_runs


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[int]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('det') / 'store.db'}"
    with open_store(url) as store:
        ids = [
            run_attack(
                store,
                AttackSpec(
                    params={"loss": loss, "mode": "equal-perturbation", "iterations": 15, "tau": 0.3},
                    n=40,
                    batch_size=40,
                ),
            )
            for loss in ("ce", "ce-sign")
        ]
    return url, ids


def test_single_source_split_keeps_twins_together(sources) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        items, _ = build_items(store, DetectorSpec(sources=ids[:1]))
    assert (items.label == 0).sum() == (items.label == 1).sum() == 40
    test = split(items, test_fraction=0.25, seed=0)
    train_ids, test_ids = set(items.image_id[~test]), set(items.image_id[test])
    assert not train_ids & test_ids
    assert (items.label[test] == 0).sum() == (items.label[test] == 1).sum() == 10
    assert not np.array_equal(test, split(items, test_fraction=0.25, seed=1))


def test_all_sources_are_balanced_with_extra_genuine_images(sources) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        items, _ = build_items(store, DetectorSpec(sources=ids))
    assert (items.label == 1).sum() == 80 and (items.label == 0).sum() == 80
    genuine = items.image_id[items.label == 0]
    assert len(set(genuine)) == 80  # the 40 attacked images plus 40 others
    assert set(items.image_id[items.label == 1]) < set(genuine)
    test = split(items, test_fraction=0.25, seed=0)
    assert not set(items.image_id[test]) & set(items.image_id[~test])
    share = [test[items.label == k].mean() for k in (0, 1)]
    assert abs(share[0] - share[1]) < 0.1  # stratified: both classes ~25 % in test


def test_training_logs_epochs_and_results_and_resumes(sources, cli) -> None:  # noqa: ANN001
    url, ids = sources

    class StopAfter:
        def epoch(self, *, epoch: int, **_: object) -> None:
            if epoch == 1:
                raise KeyboardInterrupt

    spec = DetectorSpec(sources=ids, epochs=4, batch_size=32, seed=0)
    with open_store(url) as store:
        with pytest.raises(InterruptedRun, match="--resume"):
            train_detector(store, spec, progress=StopAfter())
        run_id = max(r.run_id for r in list_runs(store, kind="detector"))
        assert get_run(store, run_id).status == "interrupted"
        resume_detector(store, run_id)
        run = get_run(store, run_id)
        with store.session() as s:
            epochs = list(
                s.scalars(select(DetectorEpoch).where(DetectorEpoch.run_id == run_id).order_by(DetectorEpoch.epoch))
            )
            results = {
                r.group_name: r for r in s.scalars(select(DetectorResult).where(DetectorResult.run_id == run_id))
            }
    assert run.status == "finished" and run.config["setting"] == "all-sources" and run.config["seed"] == 0
    assert [e.epoch for e in epochs] == [0, 1, 2, 3]
    best = max(epochs, key=lambda e: e.test_accuracy)
    assert results["overall"].accuracy == pytest.approx(best.test_accuracy) and results["overall"].epoch == best.epoch
    assert set(results) == {f"source:{ids[0]}", f"source:{ids[1]}", "adversarial", "genuine", "overall"}
    assert results["overall"].n_images == results["adversarial"].n_images + results["genuine"].n_images
    reports = Path(url.removeprefix("sqlite:///")).parent / "r"
    rows, err = _table(cli, url, "table3", reports)
    # the at-chance flag, judged independently: scipy's Wilson interval against the majority class's share
    overall = results["overall"]
    chance = max(results["genuine"].n_images, results["adversarial"].n_images) / overall.n_images
    k = round(overall.accuracy * overall.n_images)
    lo = binomtest(k, overall.n_images).proportion_ci(method="wilson").low
    assert lo > chance, (overall.accuracy, overall.n_images)  # this detector learned: it must not be flagged
    assert rows and not any(c.startswith("at chance") for r in rows for c in list(r.values())[1:]), rows
    assert "at chance" not in err


def test_group_accuracies() -> None:
    pred = np.array([1, 1, 0, 0, 1, 0])
    label = np.array([1, 1, 1, 0, 0, 0])
    source = np.array([5, 6, 6, 0, 0, 0])
    acc = group_accuracies(pred, label, source)
    assert acc["source:5"] == (5, 1, 1.0) and acc["source:6"] == (6, 2, 0.5)
    assert acc["adversarial"][2] == pytest.approx(2 / 3) and acc["genuine"][2] == pytest.approx(2 / 3)
    assert acc["overall"] == (None, 6, pytest.approx(4 / 6))


def test_changed_or_missing_image_file_is_named(sources, cli) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        with store.session() as s:
            art = s.scalars(select(Artifact).where(Artifact.run_id == ids[1]).limit(1)).one()
        path = store.location.artifacts_dir / art.path
        before = [r.run_id for r in list_runs(store)]
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        code, _, err = cli("--db", url, "retrain", "--sources", f"{ids[0]},{ids[1]}", "--epochs", "1")
        assert code == DataError.exit_code and str(path) in err and "sha256" in err
        path.unlink()
        code, _, err = cli("--db", url, "retrain", "--sources", str(ids[1]), "--epochs", "1")
        assert code == DataError.exit_code and str(path) in err and "missing" in err
    finally:
        path.write_bytes(original)
    with open_store(url) as store:
        assert [r.run_id for r in list_runs(store)] == before  # the failed attempts created no runs


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"sources": []}, "--sources"),
        ({"sources": [1], "optimizer": "rmsprop"}, "optimizer"),
        ({"sources": [1], "arch": "resnet9000"}, "resnet9000"),
        ({"sources": [1], "test_fraction": 1.5}, "test-fraction"),
    ],
)
def test_bad_detector_options(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DetectorSpec(**kw).validate()


def test_torchvision_detector_trains_on_resized_digits(sources, tmp_path) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        run_id = train_detector(
            store, DetectorSpec(arch="resnet18", sources=ids[:1], epochs=1, batch_size=40, image_size=32)
        )
        run = get_run(store, run_id)
    assert run.status == "finished" and run.config["arch"] == "resnet18"


def _one_source_store(tmp_path: Path) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        params = {"loss": "ce", "mode": "equal-perturbation", "iterations": 10, "tau": 0.3}
        return url, run_attack(store, AttackSpec(params=params, n=60))


def _table(cli, url: str, name: str, out: Path) -> tuple[list[dict], str]:  # noqa: ANN001
    import csv

    code, _, err = cli("--db", url, "report", name, "--out", str(out))
    assert code == 0, err
    return list(csv.DictReader((out / f"{name}.csv").open())), err


def test_a_detector_that_learned_nothing_is_flagged_not_reported(tmp_path, cli) -> None:  # noqa: ANN001
    url, source = _one_source_store(tmp_path)
    with open_store(url) as store:
        nothing = train_detector(store, DetectorSpec(sources=[source], epochs=1, batch_size=16, lr=1e-12, seed=1))
        assert get_run(store, nothing).status == "finished"
    (row,), err = _table(cli, url, "table2", tmp_path / "reports")
    assert row["small-cnn"].startswith("at chance (")
    assert "at chance" in err and "retrain" in err


def test_a_sweep_trains_each_setting_and_the_tables_keep_the_best(tmp_path, cli) -> None:  # noqa: ANN001
    url, source = _one_source_store(tmp_path)
    code, _, err = cli("--db", url, "retrain", "--sources", str(source), "--sweep", "--epochs", "3", "-b", "16")
    assert code == 0, err
    with open_store(url) as store:
        runs = [r for r in list_runs(store, kind="detector")]
        settings = {(r.config["optimizer"], r.config["lr"]) for r in runs}
        assert settings == {("adam", 1e-3), ("adam", 1e-4), ("sgd", 1e-2)}
        accuracy = {r.run_id: detector_accuracy(store, r.run_id) for r in runs}
    best = max(accuracy, key=lambda r: (accuracy[r], r))
    assert f"the best is run {best}" in err
    (row,), err = _table(cli, url, "table2", tmp_path / "reports")
    winner = next(r for r in runs if r.run_id == best).config
    cell = row["small-cnn"]  # "66.7% · adam 0.001" (or "at chance (…) · …" when the best learned nothing)
    assert f"{accuracy[best]:.1%}" in cell and cell.endswith(f" · {winner['optimizer']} {winner['lr']:g}")
    assert "slightly optimistic" in err


def detector_accuracy(store, run_id: int) -> float:  # noqa: ANN001
    from advdb.store.detector_results import detector_results

    return next(r.accuracy for r in detector_results(store, run_id) if r.group_name == "overall")


def _training(url: str, ids: list[int], **kw: object):  # noqa: ANN202
    import torch

    from advdb.detectors import _Training

    spec = DetectorSpec(sources=ids[:1], **kw)  # type: ignore[arg-type]
    with open_store(url) as store:
        items, ds = build_items(store, spec)
        return _Training(spec, items, ds, store.location.artifacts_dir, torch.device("cpu"))


def test_an_epoch_reads_its_loss_and_accuracy_from_the_device_once(sources, monkeypatch) -> None:  # noqa: ANN001
    import torch

    url, ids = sources
    training = _training(url, ids, batch_size=8)
    assert len(training.train_loader) >= 4
    reads: list[str] = []
    for name in ("__float__", "__int__"):  # what a step that waits for the device would call
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name):  # noqa: ANN001, ANN202
            reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    lr, loss, accuracy = training.epoch()
    assert sorted(reads) == ["__float__", "__int__"], reads  # once an epoch, not twice a step
    assert loss > 0 and 0 <= accuracy <= 1


def test_loader_workers_persist_across_epochs(sources) -> None:  # noqa: ANN001
    url, ids = sources
    training = _training(url, ids, workers=1)
    assert training.train_loader.persistent_workers and training.test_loader.persistent_workers
    assert not _training(url, ids).train_loader.persistent_workers  # no workers, nothing to keep
