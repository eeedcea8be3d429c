"""Images load ahead of the model (DataLoader workers for file-backed datasets), and plans are
made once per process for the same inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from advdb import planning
from advdb.data import create_dataset
from advdb.data.loader import load_batches
from advdb.models import create_classifier

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"n{c:03d}").mkdir()
        for i in range(12):
            pixels = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"n{c:03d}" / f"{i:03d}.JPEG", quality=90)
    return root


def test_workers_load_the_same_batches_in_order(jpegs: Path) -> None:
    ds = create_dataset("imagefolder", data_dir=str(jpegs), image_size=32)
    assert ds.loader_workers >= 1
    batches = [np.arange(s, min(s + 5, len(ds))) for s in range(0, len(ds), 5)][::-1]
    here = list(load_batches(ds, batches, device=CPU, workers=0))
    workers = list(load_batches(ds, batches, device=CPU, workers=2))
    assert [x.shape[0] for x in workers] == [len(b) for b in batches]
    for a, b in zip(here, workers, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_stopping_early_shuts_the_workers_down(jpegs: Path) -> None:
    ds = create_dataset("imagefolder", data_dir=str(jpegs), image_size=32)
    batches = [np.arange(s, s + 4) for s in range(0, 32, 4)]
    for i, _ in enumerate(load_batches(ds, batches, device=CPU, workers=2)):
        if i == 1:
            break
    assert len(list(load_batches(ds, batches[:2], device=CPU, workers=2))) == 2


def test_predictions_do_not_depend_on_the_workers(jpegs: Path) -> None:
    clf = create_classifier("resnet18", weights="random", num_classes=3)
    ds = create_dataset("imagefolder", data_dir=str(jpegs), image_size=32)
    indices = np.random.default_rng(1).permutation(len(ds))
    ds.loader_workers = 0
    here = planning.predict(clf, ds, indices, CPU, 8)
    ds.loader_workers = 2
    loaded = planning.predict(clf, ds, indices, CPU, 8)
    np.testing.assert_array_equal(here[0], loaded[0])
    np.testing.assert_array_equal(here[1], loaded[1])


def test_a_plan_is_made_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    clf = create_classifier("digits-cnn")
    ds = create_dataset("digits")
    calls = []
    real = planning._predictions
    monkeypatch.setattr(planning, "_predictions", lambda *a, **k: calls.append(1) or real(*a, **k))
    options = dict(n=40, seed=123, targets="random", device=CPU, batch_size=16)
    first, labels = planning.plan_targets(clf, ds, **options)
    first.targets[:] = -1  # callers get copies
    again, labels_again = planning.plan_targets(clf, ds, **options)
    assert len(calls) == 1
    assert (again.targets >= 0).all() and np.array_equal(labels, labels_again)
    other, _ = planning.plan_targets(clf, ds, **{**options, "seed": 124})
    assert len(calls) == 2 and not np.array_equal(other.indices, again.indices)


def test_digits_are_scikit_learns_without_importing_it() -> None:
    from sklearn.datasets import load_digits

    from advdb.data.digits import _digits

    images, labels, _ = _digits()
    expected = load_digits()
    np.testing.assert_array_equal(images, (expected.images / 16.0).astype(np.float32))
    np.testing.assert_array_equal(labels, expected.target)


def test_the_other_digits_classifiers_differ_and_train_deterministically(cli, tmp_path: Path) -> None:  # noqa: ANN001
    from advdb.models.digits_cnn import cache_paths

    default = create_classifier("digits-cnn")
    twin, mlp = create_classifier("digits-cnn-seed1"), create_classifier("digits-mlp")
    assert (twin.architecture, mlp.architecture) == ("digits-cnn", "digits-mlp")
    assert len({default.weights_sha256, twin.weights_sha256, mlp.weights_sha256}) == 3
    assert min(twin.test_accuracy or 0, mlp.test_accuracy or 0) > 0.9
    weights, meta = cache_paths("digits-mlp")
    weights.unlink()
    meta.unlink()
    assert create_classifier("digits-mlp").weights_sha256 == mlp.weights_sha256  # trained again: the same weights
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = cli("--db", url, "attack", "--model", "digits-mlp", "-n", "8", "-T", "5")
    assert code == 0 and "8 images" in out, err


def test_an_unreadable_image_in_a_worker_is_one_clear_error(jpegs: Path, tmp_path: Path) -> None:
    import shutil

    from advdb.errors import DataError

    root = tmp_path / "folder"
    shutil.copytree(jpegs, root)
    (root / "n002" / "005.JPEG").write_bytes(b"not an image")
    ds = create_dataset("imagefolder", data_dir=str(root), image_size=32)
    batches = [np.arange(s, s + 6) for s in range(0, len(ds), 6)]
    with pytest.raises(DataError) as info:
        list(load_batches(ds, batches, device=CPU, workers=2))
    assert "005.JPEG" in str(info.value) and "\n" not in str(info.value) and "Traceback" not in str(info.value)
