"""What CW and L-BFGS share: a per-image search over the constant ``c``, the smallest-L2
successful image seen so far, and the batch's outcome with one ``search_step`` per row."""

from __future__ import annotations

import math

import numpy as np
import torch

from advdb.attacks.base import BatchOutcome, Timer
from advdb.attacks.sources import max_other_logit, target_logit
from advdb.attacks.stats import StatsBuffer, per_image_norm


class BestImages:
    """The smallest-L2 successful image per input seen so far (on the device, no sync)."""

    def __init__(self, x0: torch.Tensor) -> None:
        self.x0 = x0
        self.l2 = torch.full((x0.shape[0],), math.inf, device=x0.device)
        self.x = x0.clone()

    def update(self, x: torch.Tensor, ok: torch.Tensor) -> None:
        l2 = per_image_norm(x - self.x0, 2.0)
        better = ok & (l2 < self.l2)
        self.l2 = torch.where(better, l2, self.l2)
        self.x = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x, self.x)


class SearchState:
    """Per-image bracket ``lo < c* < hi`` of the constant being searched (``0``/``inf``: no bound yet)."""

    def __init__(self, c_init: float, batch: int, device: torch.device) -> None:
        self.c = torch.full((batch,), c_init, device=device)
        self.lo = torch.zeros(batch, device=device)
        self.hi = torch.full((batch,), math.inf, device=device)

    def advance(self, succeeded: torch.Tensor, *, grow_on_fail: bool) -> None:
        self.c, self.lo, self.hi = next_c(self.c, self.lo, self.hi, succeeded, grow_on_fail=grow_on_fail)


def next_c(
    c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, succeeded: torch.Tensor, *, grow_on_fail: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the per-image search over ``c`` (no host sync).

    ``grow_on_fail``: CW (a larger c makes success easier) grows c ×10 on failure; L-BFGS
    (a larger c makes success harder) shrinks c ÷10 on failure and grows it ×10 on success.
    ``lo``/``hi`` bracket the answer; ``inf``/``0`` mean "no bound yet".
    """
    if grow_on_fail:  # CW: find the smallest successful c
        hi = torch.where(succeeded, torch.minimum(hi, c), hi)
        lo = torch.where(succeeded, lo, torch.maximum(lo, c))
        bisect = (lo + hi) / 2
        c = torch.where(torch.isfinite(hi), bisect, c * 10)
    else:  # L-BFGS: find the largest successful c (geometric bisection)
        lo = torch.where(succeeded, torch.maximum(lo, c), lo)
        hi = torch.where(succeeded, hi, torch.minimum(hi, c))
        both = (lo > 0) & torch.isfinite(hi)
        geometric = torch.sqrt(lo.clamp_min(1e-30) * hi.clamp_max(1e30))
        c = torch.where(both, geometric, torch.where(succeeded, c * 10, c / 10))
    return c, lo, hi


def reaches_target(z: torch.Tensor, t: torch.Tensor, kappa: float) -> torch.Tensor:
    """``z_t`` leads every other logit by more than κ (by more than 0 when κ = 0)."""
    return target_logit(z, t) - max_other_logit(z, t) > kappa


def search_outcome(best: BestImages, buf: StatsBuffer, steps: np.ndarray, rows: int, timer: Timer) -> BatchOutcome:
    """The batch's outcome: the best images, the recorded rows and their search step."""
    stats = buf.host()
    search = torch.from_numpy(np.repeat(steps[:rows, None], best.x.shape[0], 1))
    return BatchOutcome(x_adv=best.x, stats=stats, search_step=search, seconds=timer.seconds())
