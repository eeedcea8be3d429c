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

A fifth source, Croce & Hein's targeted DLR loss (:mod:`advdb.attacks.dlr`), registers as a
plugin does, through advdb's own ``advdb.sources`` entry point (:mod:`advdb.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from advdb.errors import ConfigError
from advdb.registry import Registry, check_params


def max_other_logit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``max_{j≠t} z_j`` per row."""
    return z.scatter(1, t[:, None], float("-inf")).amax(1)


def target_logit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``z_t`` per row."""
    return z.gather(1, t[:, None]).squeeze(1)


class Source:
    """A perturbation source: a per-image loss and the direction its gradient gives.

    A source from another package (an ``advdb.sources`` entry point, :mod:`advdb.plugins`)
    subclasses this: its hyperparameters are its ``__init__``'s keyword-only parameters, with
    annotations and defaults (``--param key=value`` on the command line, ``params={…}`` in
    Python), checked before any work. A source whose loss needs each image's initial class
    ``y`` (DLR) sets ``uses_initial_class`` and takes ``loss(z, t, y)``; the others take ``loss(z, t)``.
    """

    name: ClassVar[str]
    #: ``loss`` takes the initial classes ``y`` [B] as a third argument.
    uses_initial_class: ClassVar[bool] = False
    #: The fewest classes the loss is defined for (DLR's denominator needs the fourth-largest logit).
    min_classes: ClassVar[int] = 2

    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-image loss for logits ``z`` [B, M] and targets ``t`` [B]."""
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """``Pₙ`` from the gradient of :meth:`loss`: the steepest descent ``−∇``."""
        return -grad

    def objective(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The per-image loss the iteration minimises, given the initial classes ``y`` too."""
        if z.shape[1] < self.min_classes:
            raise ConfigError(
                f"loss {self.name!r} needs at least {self.min_classes} classes, the model has {z.shape[1]}"
            )
        if self.uses_initial_class:
            return self.loss(z, t, y)  # type: ignore[call-arg]
        return self.loss(z, t)


def _adapt(name: str, obj: object) -> type[Source]:
    """A plugin's entry point: a :class:`Source` subclass, registered under the entry point's name."""
    if not (isinstance(obj, type) and issubclass(obj, Source)):
        raise ConfigError("an advdb.sources entry point must name a subclass of advdb.attacks.sources.Source")
    obj.name = name
    return obj


SOURCES: Registry[Callable[..., Source]] = Registry("loss", _adapt)


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
        if not (kappa >= 0):
            raise ConfigError(f"--kappa must be ≥ 0, got {kappa}")
        self.kappa = kappa

    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.clamp(max_other_logit(z, t) - target_logit(z, t), min=-self.kappa)


def check_source_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against the hyperparameters source ``name`` declares (converted to their types)."""
    return check_params(SOURCES.get(name), params, what="loss", name=name)


def create_source(name: str, **params: Any) -> Source:
    """The source ``name`` with its hyperparameters ``params`` (m-logit's ``kappa`` κ ≥ 0, …), checked first."""
    return SOURCES.get(name)(**check_source_params(name, params))


def list_sources() -> dict[str, str]:
    """Source names and their one-line descriptions (plugins' included)."""
    return SOURCES.describe()
