"""Carlini & Wagner L2 (Section II): ``x' = ½(tanh(w)+1)``, minimise ``‖x'−x‖₂² + c·f(x')`` with
``f = max(max_{j≠t} z_j − z_t, −κ)`` (the m-logit source, eq. 15) by Adam on ``w``; per image,
``c`` grows ×10 until an attack succeeds, then bisects; early abort when the loss stalls;
the smallest-L2 successful image over the whole search is kept.

Every Adam step is one trajectory row (``search_step`` = index of the ``c`` being tried).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advdb.attacks.base import Attack, BatchOutcome, Timer, check_positive
from advdb.attacks.factory import register_attack
from advdb.attacks.search import BestImages, SearchState, reaches_target, search_outcome
from advdb.attacks.sources import MarginLogit
from advdb.attacks.stats import StatsBuffer, yt_mask
from advdb.errors import ConfigError


@register_attack("cw", "Carlini & Wagner L2: tanh variables, Adam, binary search over c, early abort")
@dataclass(frozen=True, kw_only=True)
class CarliniWagnerL2(Attack):
    """``search_steps`` values of ``c`` from ``c_init``, each ``max_iterations`` Adam steps at ``lr``.

    The defaults suit the digits default; CW's own ImageNet setting was c = 1e-3, 9 search
    steps, 1,000 iterations and lr 0.01: pass those for ImageNet.
    """

    loss = "m-logit"
    option_aliases = {"iterations": "max_iterations"}

    c_init: float = 0.1
    search_steps: int = 6
    max_iterations: int = 100
    lr: float = 0.1
    kappa: float = 0.0
    abort_early: bool = True

    def __post_init__(self) -> None:
        check_positive("c-init", self.c_init)
        check_positive("lr", self.lr)
        if self.search_steps < 1 or self.max_iterations < 1:
            raise ConfigError("--search-steps and --iterations must be at least 1")
        if self.kappa < 0:
            raise ConfigError(f"--kappa must be ≥ 0, got {self.kappa}")

    def budget(self) -> int:
        return self.search_steps * self.max_iterations

    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        timer = Timer(x0.device)
        buf = StatsBuffer(self.budget(), x0.shape[0], x0.device)
        steps = np.zeros(self.budget(), dtype=np.int16)
        search = SearchState(self.c_init, x0.shape[0], x0.device)
        best = BestImages(x0)
        mask = yt_mask(num_classes, y, t)
        w0 = torch.atanh((x0 * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        row = 0
        for s in range(self.search_steps):
            start = row
            succeeded, row = self._search_step(model, x0, w0, y, t, search.c, best, buf, row, mask)
            steps[start:row] = s
            search.advance(succeeded, grow_on_fail=True)
        return search_outcome(best, buf, steps, row, timer)

    def _search_step(
        self,
        model: nn.Module,
        x0: torch.Tensor,
        w0: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        c: torch.Tensor,
        best: BestImages,
        buf: StatsBuffer,
        row: int,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, int]:
        """Adam on ``w`` for one value of ``c``, from row ``row``; returns who succeeded and the next row."""
        source = MarginLogit(kappa=self.kappa)
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        succeeded = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        prev, x_prev = math.inf, None
        check = max(self.max_iterations // 10, 1)
        for i in range(self.max_iterations):
            xp = (torch.tanh(w) + 1) / 2
            z = model(xp)
            loss = (xp - x0).flatten(1).pow(2).sum(1) + c * source.loss(z, t)
            opt.zero_grad(set_to_none=True)
            gw, gx = torch.autograd.grad(loss.sum(), [w, xp])
            w.grad = gw
            with torch.no_grad():
                xd = xp.detach()
                buf.record(row, z, y, t, loss, gx, xd - x0, yt_mask=mask)
                if x_prev is not None:
                    buf.record_step(row - 1, xd - x_prev)
                ok = reaches_target(z.detach(), t, self.kappa)
                best.update(xd, ok)
                succeeded |= ok
            x_prev = xd
            row += 1
            opt.step()
            if self.abort_early and (i + 1) % check == 0:
                total = float(loss.detach().sum())  # host sync every max_iterations/10 steps, as CW
                if total > prev * 0.9999:
                    break
                prev = total
        return succeeded, row
