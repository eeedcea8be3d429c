"""advdb.record: another library's attack, recorded as an advdb run (torchattacks, Foolbox, your own loop).

torchattacks and Foolbox are test dependencies (CI installs torchattacks with --no-deps); the
tests that need one skip without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import advdb
from advdb.errors import ConfigError, ConflictError, DataError
from advdb.record import state_dict_sha256

EPS, ALPHA, STEPS = 0.3, 4 / 255, 8
#: The columns a recorded attack sees (the library's loss and gradient it does not).
SEEN = ["image_id", "iteration", "pred", "p_init", "p_target", "p_other", "z_init", "z_target", "z_other",
        "step_l2", "l1", "l2", "linf"]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[advdb.Store, advdb.RunRecord]:
    """A store with advdb's own IFGS on 6 digits (contiguous layout: the plain model's logits)."""
    store = advdb.open(tmp_path_factory.mktemp("record") / "store.db")
    run = advdb.attack(
        store=store, attack="ifgs", epsilon=EPS, alpha=ALPHA, iterations=STEPS, n=6, batch_size=6, device="cpu",
        memory_format="contiguous",
    )  # fmt: skip
    return store, run


def test_torchattacks_bim_stores_the_rows_of_advdb_ifgs(study: tuple[advdb.Store, advdb.RunRecord]) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    store, ifgs = study
    inp = store.inputs(ifgs.run_id)
    params = {"eps": EPS, "alpha": ALPHA, "steps": STEPS}
    with advdb.record(
        advdb.classifier(), inp.images, inp.labels, inp.targets, store=store, library="torchattacks",
        attack="BIM", params=params, dataset=inp.dataset, indices=inp.indices,
    ) as rec:  # fmt: skip
        bim = torchattacks.BIM(rec.model, eps=EPS, alpha=ALPHA, steps=STEPS)
        bim.set_mode_targeted_by_label(quiet=True)
        rec.finish(bim(inp.images, inp.targets))
    run = rec.run
    assert run is not None and run.status == "finished" and run.kind == "attack" and run.attack == "external"
    assert run.config["library"] == "torchattacks" and run.config["library_version"] == torchattacks.__version__
    assert run.config["external_attack"] == "BIM" and run.config["params"] == params
    assert run.iterations == STEPS and run.dataset_id == ifgs.dataset_id and run.classifier_id == ifgs.classifier_id
    ours, theirs = store.trajectory(ifgs.run_id, columns=SEEN), store.trajectory(run.run_id, columns=SEEN)
    assert (theirs.groupby("image_id").size() == STEPS + 1).all()
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)  # bit for bit
    s_ours, s_theirs = (store.samples(r).drop(columns="run_id") for r in (ifgs.run_id, run.run_id))
    pd.testing.assert_frame_equal(s_ours, s_theirs, check_exact=True)
    files = store.sql("SELECT run_id, image_id, sha256, saved_pred FROM artifacts ORDER BY image_id, run_id")
    assert len(files) == 2 * len(inp.images)
    pairs = files.groupby("image_id").agg(same=("sha256", "nunique"), pred=("saved_pred", "nunique"))
    assert (pairs["same"] == 1).all() and (pairs["pred"] == 1).all()  # the same PNG files, byte for byte


def test_foolbox_pgd_records_and_the_detector_report_builds_over_it(
    study: tuple[advdb.Store, advdb.RunRecord],
) -> None:
    fb = pytest.importorskip("foolbox")
    store, ifgs = study
    inp = store.inputs(ifgs.run_id)
    with advdb.record(
        advdb.classifier(), inp.images, inp.labels, inp.targets, store=store.url, library="foolbox",
        attack="LinfPGD", params={"epsilon": EPS, "steps": STEPS}, dataset=inp.dataset, indices=inp.indices,
    ) as rec:  # fmt: skip
        attack = fb.attacks.LinfPGD(steps=STEPS, abs_stepsize=ALPHA)  # a random start, then STEPS steps
        criterion = fb.criteria.TargetedMisclassification(inp.targets)
        _, x_adv, _ = attack(fb.PyTorchModel(rec.model, bounds=(0, 1)), inp.images, criterion, epsilons=EPS)
        rec.finish(x_adv)
    assert rec.run is not None and rec.run.status == "finished"
    run_id = rec.run.run_id
    traj = store.trajectory(run_id)
    # x₀ (the recorder's own row), the random start, STEPS − 1 steps, the result (Foolbox's check and finish: one row)
    assert (traj.groupby("image_id").size() == STEPS + 2).all()
    assert (traj[traj.iteration == 0][["l1", "l2", "linf"]] == 0).all().all()
    assert (traj.linf <= EPS + 1e-6).all() and (traj[traj.iteration == STEPS + 1].step_l2 == 0).all()
    samples = store.samples(run_id).set_index("image_id")
    last = traj[traj.iteration == STEPS + 1].set_index("image_id")
    assert (samples.final_pred == last.pred).all() and (samples.n_iterations == STEPS + 2).all()
    hit = traj[traj.pred == traj.image_id.map(samples.target)].groupby("image_id").iteration.min()
    assert samples.first_success_iter.dropna().to_dict() == hit.astype(float).to_dict()
    assert hit.size > 0  # some images reached their target
    detector = advdb.retrain(run_id, store=store, epochs=1, device="cpu")
    table = store.report("table2").data["table2"].to_pylist()
    assert [(r["source"], r["run_id"]) for r in table] == [("external", detector.run_id)]
    assert advdb.transfer(run_id, store=store, model="digits-mlp", device="cpu").status == "finished"
    assert advdb.defend(run_id, store=store, strengths=[0, 50], device="cpu").status == "finished"


class Linear(nn.Module):
    """A model of one's own: 8×8 grey images, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x.flatten(1))
        return out


def _own_loop(model: nn.Module, x: torch.Tensor, t: torch.Tensor, steps: int) -> torch.Tensor:
    """A plain targeted sign-gradient loop, as one writes it by hand."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x_adv), t)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = (x_adv - 0.05 * grad.sign()).clamp(0, 1).detach()
    return x_adv


def test_a_model_and_tensors_of_ones_own_in_batches(tmp_path: Path, cli) -> None:  # noqa: ANN001
    store = advdb.open(tmp_path / "own.db")
    model = Linear().eval()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    t = (y + 1) % 10
    with advdb.record(model, x, y, t, store=store, library="mine", attack="sign-loop", batch_size=2) as rec:
        for xb, tb in rec.batches():
            rec.finish(_own_loop(rec.model, xb, tb, steps=3))
    assert rec.run is not None and rec.run.status == "finished" and rec.run.batch_size == 2
    batches = store.sql(f"SELECT batch_index, n_images, n_rows FROM batches WHERE run_id = {rec.run.run_id}")
    assert batches.values.tolist() == [[0, 2, 8], [1, 2, 8], [2, 1, 4]]  # 3 steps + the result, per image
    dataset = store.sql(f"SELECT d.kind, d.n_images FROM datasets d WHERE dataset_id = {rec.run.dataset_id}")
    assert dataset.values.tolist() == [["tensors", 5]]
    clf = store.sql(f"SELECT name, weights_sha256 FROM classifiers WHERE classifier_id = {rec.run.classifier_id}")
    assert clf.values.tolist() == [["Linear", state_dict_sha256(model)]]
    assert advdb.transfer(rec.run.run_id, store=store, model="digits-mlp", device="cpu").status == "finished"
    with pytest.raises(DataError, match="genuine images of a tensors dataset cannot be reloaded"):
        advdb.retrain(rec.run.run_id, store=store, epochs=1, device="cpu")
    with pytest.raises(ConfigError, match="attacked your own model 'Linear', which advdb cannot rebuild"):
        advdb.defend(rec.run.run_id, store=store, transform="jpeg", device="cpu")
    code, _, err = cli("--db", store.url, "attack", "--join", str(rec.run.run_id))
    assert code == ConflictError.exit_code and "recorded another library's attack" in err, err


def test_misuse_is_a_clear_error_and_stores_nothing_half_done(tmp_path: Path) -> None:
    store = advdb.open(tmp_path / "misuse.db")
    model = Linear().eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    with pytest.raises(ConfigError, match="a target equals its image's label"):
        advdb.record(model, x, y, y, library="mine", attack="none")
    with pytest.raises(ConfigError, match=r"images must lie in \[0, 1\]"):
        advdb.record(model, x * 3, y, (y + 1) % 10, library="mine", attack="none")
    with pytest.raises(ConfigError, match="no batch was finished"):
        with advdb.record(model, x, y, (y + 1) % 10, store=store, library="mine", attack="none"):
            pass
    assert store.runs().empty
    with pytest.raises(ConfigError, match="1 of 2 batches were finished"):
        with advdb.record(model, x, y, (y + 1) % 10, store=store, library="mine", attack="half", batch_size=2) as rec:
            rec.finish(x[:2])
    assert store.runs()[["attack", "status"]].values.tolist() == [["external", "failed"]]
    with pytest.raises(RuntimeError, match="boom"):
        with advdb.record(model, x, y, (y + 1) % 10, store=store, library="mine", attack="boom") as rec:
            rec.finish(x)
            raise RuntimeError("boom")
    run = store.run(int(store.runs().run_id.max()))
    assert run.status == "failed" and "boom" in (run.error or "")
    assert int(store.sql(f"SELECT count(*) AS n FROM samples WHERE run_id = {run.run_id}").n[0]) == 4  # committed
    images = np.asarray(store.sql("SELECT idx FROM images").idx)
    assert len(images) == 4  # the tensors, registered once
