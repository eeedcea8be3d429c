"""The unified iteration (PAPER_NOTES "The unified iteration", eqs. 11–16).

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
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from advdb.attacks.sources import LOSSES, perturbation, source_loss
from advdb.attacks.stats import StatsBuffer, yt_mask
from advdb.errors import ConfigError

MODES: tuple[str, ...] = ("equal-multiplier", "equal-perturbation")
NORMS: tuple[float, ...] = (1.0, 2.0, math.inf)


def default_tau(norm: float, dim: int) -> float:
    """The size of one IFGS step of 1/255 in the p-norm: ``‖(1/255)·1‖_p`` over ``dim`` pixels."""
    if norm == math.inf:
        return 1 / 255
    return dim ** (1 / norm) / 255


def parse_norm(value: str | float) -> float:
    s = str(value).strip().lower()
    if s in ("inf", "linf", "infinity"):
        return math.inf
    try:
        p = float(s)
    except ValueError:
        raise ConfigError(f"invalid norm {value!r}: use 1, 2 or inf") from None
    if p not in (1.0, 2.0):
        raise ConfigError(f"invalid norm {value!r}: use 1, 2 or inf")
    return p


@dataclass(frozen=True, kw_only=True)
class UnifiedConfig:
    """Hyperparameters of the unified iteration (all stored with the run)."""

    loss: str
    mode: str = "equal-multiplier"
    iterations: int = 500
    alpha: float = 1 / 255
    tau: float | None = None
    norm: float = 2.0
    epsilon: float | None = None
    kappa: float = 0.0
    early_stop: bool = False
    check_every: int = 10

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.iterations < 1:
            raise ConfigError(f"--iterations must be at least 1, got {self.iterations}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ConfigError(f"--alpha must be a positive number, got {self.alpha}")
        if self.tau is not None and not (self.tau > 0 and math.isfinite(self.tau)):
            raise ConfigError(f"--tau must be a positive number, got {self.tau}")
        if self.norm not in NORMS:
            raise ConfigError(f"--norm must be 1, 2 or inf, got {self.norm}")
        if self.epsilon is not None and not (self.epsilon > 0):
            raise ConfigError(f"--epsilon must be positive, got {self.epsilon}")
        if self.kappa < 0:
            raise ConfigError(f"--kappa must be ≥ 0, got {self.kappa}")
        if self.check_every < 1:
            raise ConfigError(f"--check-every must be at least 1, got {self.check_every}")

    def resolved_tau(self, dim: int) -> float:
        return self.tau if self.tau is not None else default_tau(self.norm, dim)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["norm"] = "inf" if self.norm == math.inf else self.norm
        return d


@dataclass
class BatchOutcome:
    """What one batch of an attack produces: final images (on the device) and host statistics."""

    x_adv: torch.Tensor
    stats: torch.Tensor  # [R, B, K] float32 on the host, R = iterations run + 1
    search_step: torch.Tensor | None  # [R, B] int16 on the host (full attacks), else None
    seconds: float

    @property
    def rows_per_image(self) -> int:
        return int(self.stats.shape[0])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _p_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(v.flatten(1), ord=p, dim=1)


def run_unified(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, cfg: UnifiedConfig, *, num_classes: int) -> BatchOutcome:
    """Run the unified iteration on one batch (``x0`` in [0,1], labels ``y``, targets ``t``, all on the model's device)."""
    dev = x0.device
    synchronize(dev)
    t_start = time.perf_counter()
    B = x0.shape[0]
    T = cfg.iterations
    buf = StatsBuffer(T + 1, B, dev)
    mask = yt_mask(num_classes, y, t)
    tau = cfg.resolved_tau(x0[0].numel())
    if cfg.epsilon is not None:
        lo, hi = (x0 - cfg.epsilon).clamp_(min=0.0), (x0 + cfg.epsilon).clamp_(max=1.0)
    else:
        lo, hi = None, None
    x = x0.clone()
    for n in range(T + 1):
        x.requires_grad_(True)
        z = model(x)
        loss = source_loss(cfg.loss, z, t, kappa=cfg.kappa)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        x = x.detach()
        buf.record(n, z, y, t, loss, grad, x - x0, yt_mask=mask)
        if n == T:
            break
        if cfg.early_stop and n % cfg.check_every == 0 and bool((z.detach().argmax(1) == t).all()):
            break
        P = perturbation(cfg.loss, grad)
        if cfg.mode == "equal-multiplier":
            step = cfg.alpha * P
        else:
            size = _p_norm(P, cfg.norm)
            a = torch.where(size > 0, tau / size.clamp_min(torch.finfo(size.dtype).tiny), torch.zeros_like(size))
            step = a.view(-1, *([1] * (P.dim() - 1))) * P
        x_new = x + step
        x_new = torch.clamp(x_new, lo, hi) if lo is not None else x_new.clamp_(0.0, 1.0)
        buf.record_step(n, x_new - x)
        x = x_new
    stats = buf.host()
    synchronize(dev)
    return BatchOutcome(x_adv=x.detach(), stats=stats, search_step=None, seconds=time.perf_counter() - t_start)
