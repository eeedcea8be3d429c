"""Training and evaluating a detector under its run's lifecycle: every epoch logged and
checkpointed (resumable), the best epoch's per-group accuracies committed with the *finished*
status; a sweep over optimiser settings, and the best of several runs."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advdb.data import ImageDataset
from advdb.detectors.data import Items, _ItemDataset, build_items, split
from advdb.detectors.model import build_detector, pretrained_weights
from advdb.detectors.spec import DetectorSpec
from advdb.devices import resolve_device
from advdb.errors import DataError
from advdb.execution import prepare
from advdb.progress import EpochProgress
from advdb.store.detector_results import detector_results, finished_epochs, log_epoch, results_write
from advdb.store.engine import Store
from advdb.store.lifecycle import run_lifecycle
from advdb.store.runs import create_run, resumable_run, set_status
from advdb.vocabulary import DETECTOR_SWEEP


def _checkpoint_path(store: Store, run_id: int) -> Path:
    return store.location.artifacts_dir / f"run-{run_id}" / "detector-checkpoint.pt"


@torch.no_grad()
def _evaluate(model: nn.Module, loader: Any, device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model.eval()
    preds, labels, sources = [], [], []
    for x, y, src in loader:
        preds.append(model(x.to(device, non_blocking=True)).argmax(1))  # on the device: one copy at the end
        labels.append(y)
        sources.append(src)
    return torch.cat(preds).cpu().numpy(), torch.cat(labels).numpy(), torch.cat(sources).numpy()


def group_accuracies(
    pred: np.ndarray, label: np.ndarray, source: np.ndarray
) -> dict[str, tuple[int | None, int, float]]:
    """Accuracy per source run, on all adversarial, on genuine and overall: name → (source, n, accuracy)."""
    ok = pred == label
    out: dict[str, tuple[int | None, int, float]] = {}
    for s in sorted(set(source.tolist()) - {0}):
        m = source == s
        out[f"source:{s}"] = (int(s), int(m.sum()), float(ok[m].mean()))
    for name, m in (("adversarial", label == 1), ("genuine", label == 0), ("overall", np.ones_like(ok))):
        if m.any():
            out[name] = (None, int(m.sum()), float(ok[m].mean()))
    return out


class _Training:
    """A detector, its optimiser, schedule, shuffling generator and data loaders: one epoch at a time."""

    def __init__(self, spec: DetectorSpec, items: Items, ds: ImageDataset, root: Path, device: torch.device) -> None:
        self.device = device
        test_mask = split(items, test_fraction=spec.test_fraction, seed=spec.seed)
        self.generator = torch.Generator().manual_seed(spec.seed)
        pin, persistent = device.type == "cuda", spec.workers > 0  # workers forked once, not every epoch
        self.train_loader = torch.utils.data.DataLoader(
            _ItemDataset(items.subset(~test_mask), ds, root),
            batch_size=spec.batch_size,
            shuffle=True,
            generator=self.generator,
            num_workers=spec.workers,
            pin_memory=pin,
            persistent_workers=persistent,
            drop_last=False,
        )
        self.test_loader = torch.utils.data.DataLoader(
            _ItemDataset(items.subset(test_mask), ds, root),
            batch_size=spec.batch_size * 2,
            num_workers=spec.workers,
            pin_memory=pin,
            persistent_workers=persistent,
        )
        self.net = build_detector(spec, ds.image_shape).to(device)  # what checkpoints hold
        self.model = prepare(self.net, device, spec.execution, in_place=True)  # the optimiser holds its parameters
        params = self.net.parameters()
        if spec.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
            )
        else:
            self.opt = torch.optim.Adam(params, lr=spec.lr)
        # SGD follows the classic recipe (decay every epochs/3); Adam keeps its rate unless --step-size asks
        step = spec.step_size or (max(1, spec.epochs // 3) if spec.optimizer == "sgd" else spec.epochs + 1)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=step, gamma=spec.gamma)

    def state(self) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "generator": self.generator.get_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])

    def epoch(self) -> tuple[float, float, float]:
        """Train one epoch; returns its learning rate, mean training loss and training accuracy.

        The loss and the correct count add up on the device and are read once, at the end.
        """
        self.model.train()
        total = 0
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        lr = float(self.opt.param_groups[0]["lr"])
        for x, y, _ in self.train_loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            self.opt.zero_grad(set_to_none=True)
            logits = self.model(x)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            total += len(y)
        self.sched.step()
        return lr, float(loss_sum) / max(total, 1), int(correct) / max(total, 1)

    def test(self) -> dict[str, tuple[int | None, int, float]]:
        return group_accuracies(*_evaluate(self.model, self.test_loader, self.device))


def _train(
    store: Store,
    run_id: int,
    spec: DetectorSpec,
    items: Items,
    ds: ImageDataset,
    start_epoch: int,
    progress: EpochProgress | None,
) -> dict[str, Any]:
    """Train (from ``start_epoch``, or from the checkpoint), logging every epoch; returns the best epoch's results."""
    training = _Training(spec, items, ds, store.location.artifacts_dir, resolve_device(spec.device))
    best: dict[str, Any] = {"accuracy": -1.0, "epoch": -1, "groups": {}}
    ckpt = _checkpoint_path(store, run_id)
    if start_epoch > 0:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        training.restore(state)
        best, start_epoch = state["best"], state["epoch"] + 1
        log_epoch(store, run_id, state["row"])  # in case the process died between checkpoint and log
    for epoch in range(start_epoch, spec.epochs):
        t0 = time.perf_counter()
        lr, train_loss, train_accuracy = training.epoch()
        groups = training.test()
        test_acc = groups["overall"][2]
        if test_acc > best["accuracy"]:
            best = {"accuracy": test_acc, "epoch": epoch, "groups": groups}
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "test_accuracy": test_acc,
            "seconds": time.perf_counter() - t0,
        }
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({**training.state(), "best": best, "epoch": epoch, "row": row}, tmp)
        tmp.replace(ckpt)  # the checkpoint first: an epoch is logged only once it can be resumed from
        log_epoch(store, run_id, row)
        if progress:
            progress.epoch(
                run_id=run_id, epoch=epoch, epochs=spec.epochs, train_loss=train_loss, test_accuracy=test_acc
            )
    return best


def _run(
    store: Store,
    run_id: int,
    spec: DetectorSpec,
    start_epoch: int,
    prior: float,
    progress: EpochProgress | None,
    built: tuple[Items, ImageDataset] | None = None,
) -> int:
    """Train under the run lifecycle: the results and the *finished* status commit together."""
    with run_lifecycle(
        store, run_id, what="detector run", resume=f"advdb retrain --resume {run_id}", prior_seconds=prior
    ) as life:
        items, ds = built or build_items(store, spec)
        best = _train(store, run_id, spec, items, ds, start_epoch, progress)
        life.on_finish(results_write(run_id, best["groups"], best["epoch"]))
    return run_id


def train_detector(store: Store, spec: DetectorSpec, *, progress: EpochProgress | None = None) -> int:
    """Train a new detector; returns its run id. Inputs are validated (and hashed) before any training."""
    spec.validate()
    built = build_items(store, spec)  # every file checked (and hashed, once) before the run exists
    config = spec.to_config()
    pretrained = pretrained_weights(spec)
    config["resolved"] = {
        "pretrained": str(pretrained) if pretrained is not None else None,
        "execution": spec.execution.resolved(resolve_device(spec.device)),
    }
    run = create_run(
        store,
        kind="detector",
        config=config,
        name=f"detector {spec.arch} {spec.setting}",
        attack=None,
        seed=spec.seed,
        iterations=spec.epochs,
        batch_size=spec.batch_size,
        device=str(resolve_device(spec.device)),
    )
    return _run(store, run.run_id, spec, 0, 0.0, progress, built)


def sweep_detector(
    store: Store,
    spec: DetectorSpec,
    *,
    settings: tuple[tuple[str, float], ...] = DETECTOR_SWEEP,
    progress: EpochProgress | None = None,
) -> list[int]:
    """Train ``spec`` once per (optimiser, learning rate) of ``settings``; returns the run ids.

    Each is a run of its own, with its setting in its configuration; Tables II and III report
    the best held-out accuracy of each architecture and source and say which setting won.
    """
    runs = [replace(spec, optimizer=optimizer, lr=lr) for optimizer, lr in settings]
    for run in runs:
        run.validate()  # every setting checked before the first trains
    return [train_detector(store, run, progress=progress) for run in runs]


def best_detector(store: Store, run_ids: list[int]) -> int:
    """Of ``run_ids``, the detector run with the best overall held-out accuracy (ties: the newest)."""
    overall = {
        run_id: next(r.accuracy for r in detector_results(store, run_id) if r.group_name == "overall")
        for run_id in run_ids
    }
    return max(overall, key=lambda run_id: (overall[run_id], run_id))


def resume_detector(store: Store, run_id: int, *, progress: EpochProgress | None = None) -> int:
    """Continue a detector run from its last finished epoch."""
    run = resumable_run(store, run_id, "detector")
    cfg = {k: v for k, v in run.config.items() if k not in ("setting", "resolved")}
    spec = DetectorSpec(**cfg)
    spec.validate()
    done = finished_epochs(store, run_id)
    has_ckpt = _checkpoint_path(store, run_id).exists()
    if done and not has_ckpt:
        raise DataError(
            f"the checkpoint of detector run {run_id} is missing ({_checkpoint_path(store, run_id)}): start a new run"
        )
    start = 1 if has_ckpt else 0  # the checkpoint knows its epoch
    set_status(store, run_id, "running")
    return _run(store, run_id, spec, start, run.wall_seconds or 0.0, progress)
