"""The paper's four perturbation sources (Section III, eqs. 12–15).

Each source is a loss to *minimise* and a direction: the map from that loss's input
gradient to the perturbation ``Pₙ`` added to ``xₙ``:

=========  ==================================  ==========================================
name       loss ``L(x)``                        ``Pₙ``
=========  ==================================  ==========================================
ce         ``CE(x, t) = −log s_t``               ``−∇ₓ CE``            (eq. 12, L-BFGS)
ce-sign    ``CE(x, t)``                          ``−sign(∇ₓ CE)``      (eq. 13, IFGS)
logit      ``−z_t``                              ``+∇ₓ z_t``           (eq. 14)
m-logit    ``max(max_{j≠t} z_j − z_t, −κ)``      ``−∇ₓ`` of that       (eq. 15, CW)
=========  ==================================  ==========================================

With κ = 0 the m-logit loss is flat (gradient exactly 0) once ``z_t`` leads every other
logit, so m-logit stops moving after success.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F

from advdb.errors import ConfigError
from advdb.registry import Registry


def max_other_logit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``max_{j≠t} z_j`` per row."""
    return z.scatter(1, t[:, None], float("-inf")).amax(1)


def target_logit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``z_t`` per row."""
    return z.gather(1, t[:, None]).squeeze(1)


class Source:
    """A perturbation source: a per-image loss and the direction its gradient gives."""

    name: ClassVar[str]

    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-image loss for logits ``z`` [B, M] and targets ``t`` [B]."""
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """``Pₙ`` from the gradient of :meth:`loss`: the steepest descent ``−∇``."""
        return -grad


SOURCES: Registry[Callable[..., Source]] = Registry("loss")


def _register(name: str, help: str) -> Callable[[type[Source]], type[Source]]:
    def deco(cls: type[Source]) -> type[Source]:
        cls.name = name
        SOURCES.register(name, help)(cls)
        return cls

    return deco


@_register("ce", "cross-entropy of the target, Pₙ = −∇CE (eq. 12; L-BFGS's source)")
class CrossEntropy(Source):
    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z, t, reduction="none")


@_register("ce-sign", "cross-entropy of the target, Pₙ = −sign(∇CE) (eq. 13; IFGS's source)")
class CrossEntropySign(CrossEntropy):
    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return -torch.sign(grad)


@_register("logit", "the target's logit, Pₙ = +∇z_t (eq. 14)")
class Logit(Source):
    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -target_logit(z, t)


@_register("m-logit", "margin of the target's logit over the strongest other, floored at −κ (eq. 15; CW's source)")
class MarginLogit(Source):
    def __init__(self, *, kappa: float = 0.0) -> None:
        if kappa < 0:
            raise ConfigError(f"--kappa must be ≥ 0, got {kappa}")
        self.kappa = kappa

    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.clamp(max_other_logit(z, t) - target_logit(z, t), min=-self.kappa)


def create_source(name: str, *, kappa: float = 0.0) -> Source:
    """The source ``name``; ``kappa`` (κ ≥ 0) is m-logit's confidence margin and unused by the others."""
    cls = SOURCES.get(name)
    return cls(kappa=kappa) if cls is MarginLogit else cls()


def list_sources() -> dict[str, str]:
    """Source names and their one-line descriptions."""
    return SOURCES.describe()
