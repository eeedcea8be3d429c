"""What every attack is: a frozen set of keyword-only hyperparameters that runs on a batch."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from advdb.attacks.sources import SOURCES
from advdb.errors import ConfigError


@dataclass
class BatchOutcome:
    """What one batch of an attack produces: final images (on the device) and host statistics."""

    x_adv: torch.Tensor
    stats: torch.Tensor  # [R, B, K] float32 on the host: one row per recorded model evaluation
    search_step: torch.Tensor | None  # [R, B] int16 on the host (CW, L-BFGS), else None
    seconds: float

    @property
    def rows_per_image(self) -> int:
        return int(self.stats.shape[0])


def synchronize(device: torch.device) -> None:
    """Wait for the device (CUDA) so that wall-clock timings cover the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Seconds of device work since construction (synchronised at both ends)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        synchronize(device)
        self.start = time.perf_counter()

    def seconds(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self.start


class Attack(ABC):
    """A targeted attack with its hyperparameters (subclasses are frozen, keyword-only dataclasses).

    ``name`` is the registry name; ``loss`` the perturbation source it uses (Section III),
    ``mode`` the unified iteration's step rule (``None`` for the full attacks).
    """

    name: ClassVar[str]
    loss: str | None
    mode: str | None = None
    # Options the command line spells differently from the hyperparameter (CW's --iterations is per search step).
    option_aliases: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def budget(self) -> int:
        """Model evaluations per image the attack may record (the run's ``iterations``): T for the
        unified iteration and IFGS, search steps × iterations per step for CW and L-BFGS."""

    @abstractmethod
    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        """Attack one batch: ``x0`` in [0, 1], labels ``y`` and targets ``t``, all on the model's device."""

    def check_classes(self, num_classes: int) -> None:
        """A ConfigError, before any work, when the attack's loss is not defined for a classifier of
        ``num_classes`` classes (DLR needs four)."""
        need = getattr(SOURCES.get(self.loss), "min_classes", 2) if self.loss and self.loss in SOURCES else 2
        if num_classes < need:
            raise ConfigError(f"loss {self.loss!r} needs at least {need} classes, the model has {num_classes}")

    def to_dict(self) -> dict[str, Any]:
        """The hyperparameters, as stored with the run."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Attack:
        """Build from user options; an option the attack does not take, or a non-finite number, is a ConfigError."""
        params = {cls.option_aliases.get(k, k): v for k, v in options.items()}
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(k for k in options if cls.option_aliases.get(k, k) not in known)
        if unknown:
            opts = ", ".join("--" + u.replace("_", "-") for u in unknown)
            raise ConfigError(f"{opts} does not apply to --attack {cls.name}")
        for key, value in options.items():
            if isinstance(value, float) and not math.isfinite(value) and key != "norm":  # norm may be inf (L∞)
                raise ConfigError(f"--{key.replace('_', '-')} must be a finite number, got {value}")
        return cls(**params)


def check_positive(option: str, value: float) -> None:
    """A ConfigError unless ``value`` is a positive finite number."""
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"--{option} must be a positive number, got {value}")
