"""Detector retraining (Section V, Tables II and III).

A binary classifier — class 0 genuine, class 1 adversarial — trained on the *stored*
adversarial image files of one or more attack runs and the genuine images they came from.

* single source (Table II): each attacked image and its adversarial twin; the split is by
  image, so twins never fall on different sides;
* all sources (Table III): every source's adversarial images plus genuine images — the
  attacked ones and extra images of the same dataset — to balance the classes; again
  split by image (all versions of one image on one side), in the same proportion per class.

Every file's sha256 is checked before training; a missing or changed file is an error that
names it. Every epoch is logged to ``detector_epochs``; per-group accuracies of the best
epoch go to ``detector_results``. A checkpoint after each epoch makes the run resumable.
The run's configuration records the weights a torchvision detector started from
(``resolved.pretrained``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advdb import artifacts
from advdb.data import ImageDataset
from advdb.devices import resolve_device
from advdb.errors import ConfigError, DataError, check_finite, check_seed
from advdb.evaluation import check_files, load_dataset, source_runs
from advdb.execution import ExecutionFields, prepare
from advdb.models.classifiers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_state_file,
    load_state_into,
    torchvision_cache_file,
)
from advdb.models.digits_cnn import digits_cnn
from advdb.progress import EpochProgress
from advdb.store.catalogue import image_indices
from advdb.store.detector_results import detector_results, finished_epochs, log_epoch, results_write
from advdb.store.engine import Store
from advdb.store.evaluations import attacked_images
from advdb.store.lifecycle import run_lifecycle
from advdb.store.runs import create_run, resumable_run, set_status
from advdb.vocabulary import DETECTOR_SWEEP, OPTIMIZERS, check_choice

SMALL_ARCH = "small-cnn"


@dataclass(kw_only=True)
class DetectorSpec(ExecutionFields):
    """Everything that defines a detector run (stored in full as its configuration)."""

    arch: str = SMALL_ARCH
    sources: list[int] = field(default_factory=list)
    weights: str | None = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    step_size: int | None = None
    gamma: float = 0.1
    test_fraction: float = 0.2
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = 0

    @property
    def setting(self) -> str:
        return "single-source" if len(self.sources) == 1 else "all-sources"

    def validate(self) -> None:
        if not self.sources:
            raise ConfigError("--sources needs at least one attack run id")
        if len(set(self.sources)) != len(self.sources):
            raise ConfigError("--sources lists a run twice")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("--epochs and --batch-size must be at least 1")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"--test-fraction must lie between 0 and 1, got {self.test_fraction}")
        check_finite("momentum", self.momentum, minimum=0.0)
        check_finite("weight-decay", self.weight_decay, minimum=0.0)
        check_finite("gamma", self.gamma, positive=True)
        check_seed(self.seed)
        if self.step_size is not None and self.step_size < 1:
            raise ConfigError(f"--step-size must be at least 1 epoch, got {self.step_size}")
        if self.image_size is not None and not 8 <= self.image_size <= 4096:
            raise ConfigError(f"--image-size must be between 8 and 4096 pixels, got {self.image_size}")
        if self.image_size is not None and self.arch == SMALL_ARCH:
            raise ConfigError(
                f"--image-size applies to torchvision detectors; {SMALL_ARCH} trains on the images' own size"
            )
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}")
        if self.arch != SMALL_ARCH:
            import torchvision

            if self.arch not in torchvision.models.list_models(module=torchvision.models):
                raise ConfigError(
                    f"unknown detector architecture {self.arch!r}: {SMALL_ARCH} or a torchvision classifier "
                    "(resnet18, alexnet, vgg16, …)"
                )
        resolve_device(self.device)
        self.execution  # noqa: B018 - validates the precision and memory format

    def to_config(self) -> dict[str, Any]:
        return {**asdict(self), "setting": self.setting}


# --- data ------------------------------------------------------------------------------------


@dataclass
class Items:
    """The detector's examples: what to load, its label and its group (source run or genuine)."""

    image_id: np.ndarray  # genuine image id (the group for splitting)
    dataset_idx: np.ndarray  # index in the dataset (genuine) or -1
    path: list[str | None]  # artifact path (adversarial) or None
    label: np.ndarray  # 0 genuine, 1 adversarial
    source: np.ndarray  # source run id, 0 for genuine

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, mask: np.ndarray) -> Items:
        idx = np.flatnonzero(mask)
        return Items(
            self.image_id[idx], self.dataset_idx[idx], [self.path[i] for i in idx], self.label[idx], self.source[idx]
        )


def build_items(store: Store, spec: DetectorSpec) -> tuple[Items, ImageDataset]:
    """Genuine and adversarial examples of the sources, every file's sha256 checked."""
    _, dataset_id = source_runs(store, spec.sources, what="detectors")
    ds = load_dataset(store, dataset_id)
    idx_of = image_indices(store, dataset_id)
    arts = attacked_images(store, spec.sources)
    check_files(store, arts, spec.sources)
    adv_ids = np.array([art.image_id for art in arts], dtype=np.int64)
    attacked = np.unique(adv_ids)
    n_adv = len(arts)
    genuine_ids = list(attacked)
    if spec.setting == "all-sources" and n_adv > len(genuine_ids):  # balance with extra genuine images
        rng = np.random.default_rng([spec.seed, 2])
        extra = np.setdiff1d(np.fromiter(idx_of.keys(), dtype=np.int64), attacked)
        genuine_ids += list(rng.permutation(extra)[: n_adv - len(genuine_ids)])
    genuine = np.asarray(genuine_ids, dtype=np.int64)
    items = Items(
        image_id=np.concatenate([genuine, adv_ids]),
        dataset_idx=np.concatenate([[idx_of[int(i)] for i in genuine], np.full(n_adv, -1)]).astype(np.int64),
        path=[None] * len(genuine) + [art.path for art in arts],
        label=np.concatenate([np.zeros(len(genuine)), np.ones(n_adv)]).astype(np.int64),
        source=np.concatenate([np.zeros(len(genuine)), [art.run_id for art in arts]]).astype(np.int64),
    )
    return items, ds


def split(items: Items, *, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean test mask: whole images (all their versions) on one side, per class in proportion.

    Images that have adversarial versions are split on their own, extra genuine images on
    their own, so both classes get ``test_fraction`` of their images in the test set.
    """
    rng = np.random.default_rng([seed, 3])
    adv_groups = np.unique(items.image_id[items.label == 1])
    extra_groups = np.setdiff1d(np.unique(items.image_id), adv_groups)
    test_groups: list[np.ndarray] = []
    for groups in (adv_groups, extra_groups):
        if len(groups):
            k = max(1, round(test_fraction * len(groups))) if len(groups) > 1 else 0
            test_groups.append(rng.permutation(groups)[:k])
    return np.isin(items.image_id, np.concatenate(test_groups) if test_groups else [])


class _ItemDataset(torch.utils.data.Dataset):
    def __init__(self, items: Items, ds: ImageDataset, root: Path) -> None:
        self.items, self.ds, self.root = items, ds, root

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        it = self.items
        if it.label[i] == 0:
            x = self.ds.load_array([int(it.dataset_idx[i])])[0]
        else:
            x = artifacts.load(self.root / it.path[i])  # type: ignore[operator]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(it.label[i]), int(it.source[i])


# --- models --------------------------------------------------------------------------------------


def _replace_last_linear(net: nn.Module, out_features: int) -> None:
    """Swap the final linear layer for a fresh ``out_features``-way one (Kaiming init)."""
    parent, name, last = None, None, None
    for module in net.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                parent, name, last = module, child_name, child
    if last is None or parent is None or name is None:
        raise ConfigError("this architecture has no final linear layer to replace")
    new = nn.Linear(last.in_features, out_features)
    nn.init.kaiming_normal_(new.weight, nonlinearity="relu")
    nn.init.zeros_(new.bias)
    setattr(parent, name, new)


class _Detector(nn.Module):
    """Resize, channel adaptation and normalisation around the detector network."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, *, size: int | None, channels: int, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.net, self.size, self.channels = net, size, channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self.net((x - self.mean) / self.std)


def pretrained_weights(spec: DetectorSpec) -> Path | None:
    """The ImageNet weights a torchvision detector starts from: ``--weights``, else torchvision's cache if there."""
    if spec.arch == SMALL_ARCH:
        return None
    if spec.weights:
        path = Path(spec.weights).expanduser()
        if not path.exists():
            raise DataError(f"weights file {path} does not exist")
        return path
    cached = torchvision_cache_file(spec.arch)
    return cached if cached is not None and cached.exists() else None


def build_detector(spec: DetectorSpec, image_shape: tuple[int, ...]) -> nn.Module:
    """The detector network, initialised from :func:`pretrained_weights` where there are any."""
    torch.manual_seed(spec.seed)
    if spec.arch == SMALL_ARCH:
        c = int(image_shape[0])
        net = digits_cnn(num_classes=2, channels=c)
        if image_shape[-1] > 8:  # larger images (28×28 MNIST): pooled to the 2×2 its classifier head takes
            layers = list(net.children())
            net = nn.Sequential(*layers[:8], nn.AdaptiveMaxPool2d(2), *layers[8:])
        _replace_last_linear(net, 2)
        size = spec.image_size or (8 if image_shape[-1] < 8 else None)
        return _Detector(net, size=size, channels=c, mean=(0.5,) * c, std=(0.25,) * c)
    import torchvision

    net = torchvision.models.get_model(spec.arch, weights=None, num_classes=1000)
    path = pretrained_weights(spec)
    if path is not None:
        load_state_into(net, load_state_file(path), path, spec.arch)
    _replace_last_linear(net, 2)
    return _Detector(net, size=spec.image_size or 224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)


# --- training ----------------------------------------------------------------------------------


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
