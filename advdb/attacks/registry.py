"""The attack registry: ``create_attack(name, **hyperparameters)``, ``list_attacks()``.

``unified`` is the paper's loss-source iteration (any of the four sources, either mode);
the full attacks ``ifgs``, ``cw`` and ``lbfgs`` are registered by their modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from advdb.attacks.engine import BatchOutcome, UnifiedConfig, run_unified
from advdb.errors import ConfigError
from advdb.registry import Registry


@dataclass
class Attack:
    """A configured attack: what the run records (name, loss, mode, config) and how to run a batch."""

    name: str
    loss: str | None
    mode: str | None
    config: Any
    run_batch: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, int], BatchOutcome]

    def run(self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int) -> BatchOutcome:
        return self.run_batch(model, x0, y, t, num_classes)


ATTACKS: Registry = Registry("attack")


def _build(cls: type, params: dict[str, Any], attack: str) -> Any:
    """Instantiate an attack's config dataclass; an option it does not have is a ConfigError."""
    from dataclasses import fields

    unknown = sorted(set(params) - {f.name for f in fields(cls)})
    if unknown:
        opts = ", ".join("--" + u.replace("_", "-") for u in unknown)
        raise ConfigError(f"{opts} does not apply to --attack {attack}")
    for name, value in params.items():
        if isinstance(value, float) and not math.isfinite(value) and name != "norm":  # norm may be inf (L∞)
            raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    return cls(**params)


@ATTACKS.register("unified", "the paper's unified iteration with one loss source (ce, ce-sign, logit, m-logit), either mode")
def _unified(**params: Any) -> Attack:
    cfg: UnifiedConfig = _build(UnifiedConfig, params, "unified")
    return Attack(
        name="unified", loss=cfg.loss, mode=cfg.mode, config=cfg,
        run_batch=lambda m, x, y, t, k: run_unified(m, x, y, t, cfg, num_classes=k),
    )


def _register_full_attacks() -> None:
    """Import the module that registers ifgs, cw and lbfgs (it imports this one, so lazily)."""
    import importlib

    importlib.import_module("advdb.attacks.full")


def create_attack(name: str, **params: Any) -> Attack:
    """Create an attack by name with keyword-only hyperparameters (validated here)."""
    _register_full_attacks()
    return ATTACKS.get(name)(**params)


def list_attacks() -> dict[str, str]:
    _register_full_attacks()
    return ATTACKS.describe()
