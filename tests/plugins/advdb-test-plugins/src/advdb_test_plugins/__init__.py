"""advdb's test plugins: a full attack, a classifier and a data set from a separately installed package.

* ``rs-pgd`` (``advdb.attacks``): targeted L∞ PGD from a uniform random start in the ε-ball, built on
  advdb's :class:`~advdb.attacks.base.Attack` as the built-in IFGS is; it records every iteration's
  statistics, so each image gets ``iterations + 1`` trajectory rows.
* ``digits-ridge`` (``advdb.models``): a linear classifier of the 8×8 digits, fitted in closed form by
  ridge regression on one-hot labels of the training half (deterministic, milliseconds).
* ``digits-odd`` (``advdb.datasets``): the held-out digits whose class is odd (1, 3, 5, 7, 9), with
  their real labels.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from advdb.attacks.base import Attack, BatchOutcome, Timer
from advdb.attacks.stats import StatsBuffer, yt_mask
from advdb.data.base import InMemoryImages
from advdb.data.digits import Digits
from advdb.errors import ConfigError
from advdb.models.classifiers import LoadedClassifier
from advdb.models.wrapper import PixelSpaceClassifier

RIDGE = 1.0  # the ridge penalty λ of the classifier's fit


@dataclass(frozen=True, kw_only=True)
class RandomStartPGD(Attack):
    """targeted L∞ PGD from a random start in the ε-ball (advdb's test plugin)"""

    loss = "ce"

    epsilon: float = 0.3
    alpha: float = 0.05
    iterations: int = 10

    def __post_init__(self) -> None:
        for key in ("epsilon", "alpha"):
            value = getattr(self, key)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"parameter {key!r} of attack 'rs-pgd' must be positive, got {value}")
        if self.iterations < 1:
            raise ConfigError(f"parameter 'iterations' of attack 'rs-pgd' must be at least 1, got {self.iterations}")

    def budget(self) -> int:
        return self.iterations

    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        timer = Timer(x0.device)
        buf = StatsBuffer(self.iterations + 1, x0.shape[0], x0.device)
        mask = yt_mask(num_classes, y, t)
        lo, hi = (x0 - self.epsilon).clamp(min=0.0), (x0 + self.epsilon).clamp(max=1.0)
        start = torch.rand(x0.shape, dtype=x0.dtype).to(x0.device) * 2 - 1  # the worker seeds each batch
        x = torch.clamp(x0 + self.epsilon * start, lo, hi)
        for n in range(self.iterations + 1):
            x.requires_grad_(True)
            z = model(x)
            loss = F.cross_entropy(z, t, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), x)
            x = x.detach()
            buf.record(n, z, y, t, loss, grad, x - x0, yt_mask=mask)
            if n == self.iterations:
                break
            x_new = torch.clamp(x - self.alpha * grad.sign(), lo, hi)
            buf.record_step(n, x_new - x)
            x = x_new
        return BatchOutcome(x_adv=x, stats=buf.host(), search_step=None, seconds=timer.seconds())


def create_ridge_classifier(**_: Any) -> LoadedClassifier:
    """a linear classifier of the 8×8 digits, fitted by ridge regression (advdb's test plugin)"""
    train = Digits("train")
    x = train.load_array(np.arange(len(train))).reshape(len(train), -1).astype(np.float64)
    mean, std = float(x.mean()), float(x.std())
    a = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ np.eye(10)[train.labels])
    linear = nn.Linear(64, 10)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w[:-1].T.copy()))
        linear.bias.copy_(torch.from_numpy(w[-1].copy()))
    module = PixelSpaceClassifier(nn.Sequential(nn.Flatten(), linear), (mean,), (std,))
    test = Digits("test")
    with torch.no_grad():
        predicted = module(test.load(np.arange(len(test)))).argmax(1).numpy()
    return LoadedClassifier(
        name="digits-ridge",
        architecture="digits-ridge",
        module=module,
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(mean,),
        std=(std,),
        weights_source=f"ridge:lambda={RIDGE}",
        weights_sha256=hashlib.sha256(w.astype(np.float32).tobytes()).hexdigest(),
        test_accuracy=float((predicted == test.labels).mean()),
        default_dataset="digits",
    )


# what `advdb attack --model digits-ridge` attacks when no --dataset is given (read without building it)
create_ridge_classifier.default_dataset = "digits"  # type: ignore[attr-defined]


class OddDigits(InMemoryImages):
    """The held-out digits of the odd classes, with their real labels (a kind of its own: advdb reloads
    its genuine images for defenses through the registry, by name)."""

    kind = "odd-digits"

    def __init__(self) -> None:
        digits = Digits("test")
        odd = np.flatnonzero(digits.labels % 2 == 1)
        self.name, self.split = "digits-odd", "test"
        self._x = np.ascontiguousarray(digits.load_array(odd))
        self._y = digits.labels[odd]


def create_odd_digits(**_: Any) -> OddDigits:
    """the held-out 8×8 digits of the odd classes 1, 3, 5, 7, 9 (advdb's test plugin)"""
    return OddDigits()
