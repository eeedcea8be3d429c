"""Targeted IFGS / BIM (Kurakin et al.; Section II): ``x'ₙ₊₁ = Clip_{x,ε}(x'ₙ − α·sign(∇ₓ CE(x'ₙ, t)))``.

It *is* the unified iteration with the ``ce-sign`` source, equal multiplier and an ε-ball,
so it runs on that engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advdb.attacks.base import Attack, BatchOutcome
from advdb.attacks.factory import register_attack
from advdb.attacks.unified import UnifiedAttack


@register_attack("ifgs", "targeted IFGS / BIM (Kurakin et al.): α·sign steps inside an ε-ball")
@dataclass(frozen=True, kw_only=True)
class IFGS(Attack):
    """Step ``alpha``, L∞ radius ``epsilon``, ``iterations`` steps; ``early_stop`` as the unified iteration."""

    loss = "ce-sign"

    alpha: float = 1 / 255
    epsilon: float = 16 / 255
    iterations: int = 100
    early_stop: bool = False
    check_every: int = 10

    def __post_init__(self) -> None:
        self.unified()  # validates

    def unified(self) -> UnifiedAttack:
        return UnifiedAttack(
            loss="ce-sign",
            mode="equal-multiplier",
            iterations=self.iterations,
            alpha=self.alpha,
            epsilon=self.epsilon,
            early_stop=self.early_stop,
            check_every=self.check_every,
        )

    def budget(self) -> int:
        return self.iterations

    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        return self.unified().run(model, x0, y, t, num_classes=num_classes)
