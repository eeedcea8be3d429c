"""What defines a detector run: its architecture, sources, optimiser and data split (stored in
full as the run's configuration)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from advdb.devices import resolve_device
from advdb.errors import ConfigError, check_finite, check_seed
from advdb.execution import ExecutionFields
from advdb.vocabulary import OPTIMIZERS, check_choice

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
