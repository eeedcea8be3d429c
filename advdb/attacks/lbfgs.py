"""Box-constrained L-BFGS (Szegedy et al.; Section II): minimise ``c·‖r‖₂ + CE(x+r, t)`` with
``x+r ∈ [0,1]`` by SciPy's L-BFGS-B; per image, ``c`` is searched (×10, then geometric
bisection) for the *largest* distance weight whose solution is still classified as ``t`` —
equivalently the smallest weight ``1/c`` of the loss, the "smallest c" of the form
``‖r‖₂ + c·CE``. The smallest-L2 successful image is kept.

Every objective evaluation is one batched forward/backward and one trajectory row
(``search_step`` = index of the ``c`` being tried); SciPy works on the host, so each
evaluation synchronises (inherent to the method).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advdb.attacks.base import Attack, BatchOutcome, Timer, check_positive
from advdb.attacks.factory import register_attack
from advdb.attacks.search import BestImages, SearchState, search_outcome
from advdb.attacks.sources import CrossEntropy
from advdb.attacks.stats import StatsBuffer, yt_mask
from advdb.errors import ConfigError

OVERSHOOT = 25  # L-BFGS-B may evaluate a few more times than maxfun per search step


@register_attack("lbfgs", "box-constrained L-BFGS (Szegedy et al.): c·‖r‖₂ + CE with SciPy L-BFGS-B, search over c")
@dataclass(frozen=True, kw_only=True)
class LBFGS(Attack):
    """``search_steps`` values of ``c`` from ``c_init``; SciPy's limits per search step:
    ``max_iterations``, ``max_evaluations``."""

    loss = "ce"
    option_aliases = {"iterations": "max_iterations"}

    c_init: float = 0.1
    search_steps: int = 5
    max_iterations: int = 50
    max_evaluations: int = 100

    def __post_init__(self) -> None:
        check_positive("c-init", self.c_init)
        if self.search_steps < 1 or self.max_iterations < 1 or self.max_evaluations < 2:
            raise ConfigError("--search-steps and --iterations must be at least 1")

    def budget(self) -> int:
        return self.search_steps * self.max_evaluations

    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        from scipy.optimize import minimize

        timer = Timer(x0.device)
        objective = _Objective(model, x0, y, t, self, num_classes)
        x0d = x0.double().cpu().numpy().reshape(-1)
        bounds = list(zip((-x0d).tolist(), (1 - x0d).tolist(), strict=True))
        for s in range(self.search_steps):
            objective.begin_step(s)
            minimize(
                objective,
                np.zeros_like(x0d),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self.max_iterations, "maxfun": self.max_evaluations},
            )
            objective.search.advance(objective.succeeded, grow_on_fail=False)
        return search_outcome(objective.best, objective.buf, objective.steps, objective.row, timer)


class _Objective:
    """SciPy's objective and gradient for the whole batch (separable per image), recording each evaluation."""

    def __init__(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, attack: LBFGS, num_classes: int
    ) -> None:
        self.model, self.x0, self.y, self.t = model, x0, y, t
        self.rows_max = attack.search_steps * (attack.max_evaluations + OVERSHOOT)
        self.buf = StatsBuffer(self.rows_max, x0.shape[0], x0.device)
        self.steps = np.zeros(self.rows_max, dtype=np.int16)
        self.mask = yt_mask(num_classes, y, t)
        self.search = SearchState(attack.c_init, x0.shape[0], x0.device)
        self.best = BestImages(x0)
        self.source = CrossEntropy()
        self.row, self.step = 0, 0
        self.prev: torch.Tensor | None = None
        self.succeeded = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)

    def begin_step(self, step: int) -> None:
        self.step, self.prev = step, None
        self.succeeded = torch.zeros_like(self.succeeded)

    def __call__(self, r_flat: np.ndarray) -> tuple[float, np.ndarray]:
        x0 = self.x0
        r = torch.from_numpy(r_flat).to(x0.device, torch.float32).view_as(x0).requires_grad_(True)
        x = (x0 + r).clamp(0, 1)
        z = self.model(x)
        dist = torch.sqrt(r.flatten(1).pow(2).sum(1) + 1e-12)
        loss = self.search.c * dist + self.source.loss(z, self.t)
        (g,) = torch.autograd.grad(loss.sum(), r)
        with torch.no_grad():
            xd = x.detach()
            if self.row < self.rows_max:
                self.buf.record(self.row, z, self.y, self.t, loss, g, xd - x0, yt_mask=self.mask)
                if self.prev is not None:
                    self.buf.record_step(self.row - 1, xd - self.prev)
                self.steps[self.row] = self.step
                self.row += 1
            self.prev = xd
            ok = z.argmax(1) == self.t
            self.best.update(xd, ok)
            self.succeeded |= ok
        return float(loss.detach().sum()), g.double().cpu().numpy().reshape(-1)
