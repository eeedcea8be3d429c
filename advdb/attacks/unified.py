"""The unified iteration (Section III, eqs. 11–16).

``xₙ₊₁ = clip₍₀,₁₎(xₙ + αₙ · Pₙ)`` for ``n = 0 … T−1`` with ``Pₙ`` from one of the four
sources and

* **equal multiplier**: ``αₙ = α`` for every source and iteration;
* **equal perturbation**: ``αₙ = τ / ‖Pₙ‖_p`` per image, so ``‖αₙ Pₙ‖_p = τ`` before
  clipping (eq. 16); a zero source adds nothing.

An optional ε-ball (L∞ around ``x₀``) is projected onto after each step. Statistics for
every image at every iteration are written on the device; the host sees them once per
batch. The optional early stop checks success every ``check_every`` iterations, the only
host synchronisation inside the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advdb.attacks.base import Attack, BatchOutcome, Timer, check_positive
from advdb.attacks.factory import register_attack
from advdb.attacks.sources import SOURCES, Source, check_source_params
from advdb.attacks.stats import StatsBuffer, prediction, yt_mask
from advdb.errors import ConfigError
from advdb.registry import declared_params
from advdb.vocabulary import DEFAULT_MODE, MODES, NORMS, check_choice


def default_tau(norm: float, dim: int) -> float:
    """The size of one IFGS step of 1/255 in the p-norm: ``‖(1/255)·1‖_p`` over ``dim`` pixels."""
    if norm == math.inf:
        return 1 / 255
    return float(dim ** (1 / norm) / 255)


def _p_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    norm: torch.Tensor = torch.linalg.vector_norm(v.flatten(1), ord=p, dim=1)
    return norm


@register_attack("unified", "the paper's unified iteration with one loss source (advdb list losses), either mode")
@dataclass(frozen=True, kw_only=True)
class UnifiedAttack(Attack):
    """The unified iteration with source ``loss`` and step rule ``mode`` for ``iterations`` = T steps.

    ``alpha`` is the equal multiplier α; ``tau`` the equal-perturbation step τ in the
    ``norm``-norm (default: one 1/255 IFGS step, :func:`default_tau`); ``epsilon`` an
    optional L∞ radius; ``loss_params`` the source's own hyperparameters (m-logit's margin κ
    as ``kappa``; a plugin's, :mod:`advdb.plugins`); ``early_stop`` ends a batch once every
    image is the target (checked every ``check_every`` iterations).
    """

    loss: str
    mode: str = DEFAULT_MODE
    iterations: int = 500
    alpha: float = 1 / 255
    tau: float | None = None
    norm: float = 2.0
    epsilon: float | None = None
    loss_params: dict[str, Any] = field(default_factory=dict)
    early_stop: bool = False
    check_every: int = 10

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Attack:
        """As :meth:`Attack.from_options`; ``kappa`` (``--kappa``) is m-logit's hyperparameter."""
        opts = dict(options)
        if opts.get("kappa") is not None and "kappa" not in declared_params(SOURCES.get(opts.get("loss", ""))):
            raise ConfigError(f"--kappa applies to a loss that takes κ (m-logit), not to --loss {opts.get('loss')}")
        if opts.get("kappa") is not None:
            opts["loss_params"] = {"kappa": opts.pop("kappa"), **(opts.get("loss_params") or {})}
        opts.pop("kappa", None)
        return super().from_options(opts)

    def __post_init__(self) -> None:
        SOURCES.get(self.loss)  # an unknown source is one line naming the registered ones
        object.__setattr__(self, "loss_params", check_source_params(self.loss, self.loss_params or {}))
        self.source  # noqa: B018 - the source validates its hyperparameters (κ ≥ 0, …)
        check_choice(self.mode, MODES, "mode")
        if self.iterations < 1:
            raise ConfigError(f"--iterations must be at least 1, got {self.iterations}")
        check_positive("alpha", self.alpha)
        if self.tau is not None:
            check_positive("tau", self.tau)
        if self.norm not in NORMS:
            raise ConfigError(f"--norm must be 1, 2 or inf, got {self.norm}")
        if self.epsilon is not None and not (self.epsilon > 0):
            raise ConfigError(f"--epsilon must be positive, got {self.epsilon}")
        if self.check_every < 1:
            raise ConfigError(f"--check-every must be at least 1, got {self.check_every}")

    def budget(self) -> int:
        return self.iterations

    @property
    def source(self) -> Source:
        created: Source = SOURCES.get(self.loss)(**self.loss_params)
        return created

    def resolved_tau(self, dim: int) -> float:
        return self.tau if self.tau is not None else default_tau(self.norm, dim)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["norm"] = "inf" if self.norm == math.inf else self.norm
        return d

    def step(self, P: torch.Tensor, tau: float) -> torch.Tensor:
        """``αₙ · Pₙ``: α·P (equal multiplier) or τ·P/‖P‖_p per image (equal perturbation, eq. 16)."""
        if self.mode == "equal-multiplier":
            return self.alpha * P
        size = _p_norm(P, self.norm)
        a = torch.where(size > 0, tau / size.clamp_min(torch.finfo(size.dtype).tiny), torch.zeros_like(size))
        return a.view(-1, *([1] * (P.dim() - 1))) * P

    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        timer = Timer(x0.device)
        T, source = self.iterations, self.source
        buf = StatsBuffer(T + 1, x0.shape[0], x0.device)
        mask = yt_mask(num_classes, y, t)
        tau = self.resolved_tau(x0[0].numel())
        lo, hi = (
            ((x0 - self.epsilon).clamp_(min=0.0), (x0 + self.epsilon).clamp_(max=1.0)) if self.epsilon else (None, None)
        )
        x = x0.clone()
        for n in range(T + 1):
            x.requires_grad_(True)
            z = model(x)
            loss = source.objective(z, t, y)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            x = x.detach()
            buf.record(n, z, y, t, loss, grad, x - x0, yt_mask=mask)
            if n == T:
                break
            if self.early_stop and n % self.check_every == 0 and bool((prediction(z.detach(), t) == t).all()):
                break
            x_new = x + self.step(source.direction(grad), tau)
            x_new = torch.clamp(x_new, lo, hi) if lo is not None else x_new.clamp_(0.0, 1.0)
            buf.record_step(n, x_new - x)
            x = x_new
        stats = buf.host()
        return BatchOutcome(x_adv=x.detach(), stats=stats, search_step=None, seconds=timer.seconds())
