"""The built-in digits classifiers, trained deterministically on first use.

``digits-cnn`` (the default), the same CNN trained from another seed (``digits-cnn-seed1``)
and an MLP (``digits-mlp``): models that differ from the default, for asking whether an
adversarial image made on one fools another. Each is trained on ``digits-train`` (the other
half of scikit-learn's digits), evaluated on ``digits``, and cached in
``$ADVDB_HOME/models`` with its sha256 beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from advdb.artifacts import sha256_of as sha256_file
from advdb.config import advdb_home

VERSION = 1
EPOCHS = 40
TRAIN_SEED = 0


def digits_cnn(num_classes: int = 10, channels: int = 1) -> nn.Module:
    """conv32-conv64-pool-conv128-pool-fc128-fc10 for 8×8 inputs."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 2 * 2, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def digits_mlp(num_classes: int = 10) -> nn.Module:
    """fc256-fc256-fc10 on the 64 pixels."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, num_classes)
    )


@dataclass(frozen=True)
class DigitsModel:
    """A built-in digits classifier: its name, architecture and training seed."""

    name: str
    architecture: str  # "digits-cnn" or "digits-mlp"
    seed: int

    def build(self) -> nn.Module:
        return digits_cnn() if self.architecture == "digits-cnn" else digits_mlp()


DIGITS_MODELS = {
    m.name: m
    for m in (
        DigitsModel("digits-cnn", "digits-cnn", TRAIN_SEED),
        DigitsModel("digits-cnn-seed1", "digits-cnn", 1),
        DigitsModel("digits-mlp", "digits-mlp", TRAIN_SEED),
    )
}


def cache_paths(name: str = "digits-cnn") -> tuple[Path, Path]:
    d = advdb_home() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}-v{VERSION}.pt", d / f"{name}-v{VERSION}.json"


TRAINING_THREADS = 2


def train_digits_model(model: DigitsModel) -> tuple[dict[str, torch.Tensor], dict]:
    """Train ``model`` deterministically (its seed, CPU, :data:`TRAINING_THREADS` threads); returns
    (state_dict, meta).

    A fixed thread count: the sums of a matrix product split over threads come out in another
    order, so the same seed gave other weights in a process with another thread count
    (OMP_NUM_THREADS, another machine). Two, as on the 2-core machines every figure of the
    README was measured on.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        return _train(model)
    finally:
        torch.set_num_threads(threads)


def _train(model: DigitsModel) -> tuple[dict[str, torch.Tensor], dict]:
    from advdb.data.digits import Digits

    train, test = Digits("train"), Digits("test")
    x = train.load(range(len(train)))
    y = torch.as_tensor(train.labels)
    mean, std = float(x.mean()), float(x.std())
    g = torch.Generator().manual_seed(model.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model.seed)
        net = model.build()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xn = (x - mean) / std
    net.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(xn), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xn[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        xt = (test.load(range(len(test))) - mean) / std
        acc = float((net(xt).argmax(1).numpy() == test.labels).mean())
    meta = {
        "version": VERSION,
        "mean": [mean],
        "std": [std],
        "test_accuracy": acc,
        "epochs": EPOCHS,
        "seed": model.seed,
    }
    return net.state_dict(), meta


def load_or_train(name: str = "digits-cnn") -> tuple[nn.Module, dict, Path]:
    """The cached model ``name``, training it first if the cache is missing or does not match its sha256."""
    model = DIGITS_MODELS[name]
    weights, meta_path = cache_paths(name)
    meta = None
    if weights.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") != sha256_file(weights):
            meta = None
    if meta is None:
        state, meta = train_digits_model(model)
        tmp = weights.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(weights)
        meta["sha256"] = sha256_file(weights)
        meta_path.write_text(json.dumps(meta, indent=2))
    net = model.build()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net, meta, weights
