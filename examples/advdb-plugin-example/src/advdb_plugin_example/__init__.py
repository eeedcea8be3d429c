"""An example advdb plugin: a perturbation source and a defense transform.

advdb finds both through the entry points of this package's ``pyproject.toml``; each has one
hyperparameter, declared as a keyword-only parameter with an annotation and a default, which
``--param key=value`` (or ``params={...}`` in Python) sets and advdb checks before any work.
"""

from __future__ import annotations

import torch

from advdb.attacks.sources import Source, target_logit
from advdb.errors import ConfigError
from advdb.transforms import Transform


class SoftmaxTarget(Source):
    """softmax probability of the target at temperature T, Pₙ = +∇ s_t(z / T) (example plugin)"""

    def __init__(self, *, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ConfigError(f"parameter 'temperature' of loss 'softmax-target' must be positive, got {temperature}")
        self.temperature = temperature

    def loss(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # minimised: minus the target's probability (its gradient still flows when s_t is tiny at T > 1)
        scaled = z / self.temperature
        return -torch.exp(target_logit(scaled, t) - torch.logsumexp(scaled, dim=1))


def create_gaussian_noise(*, seed: int = 0) -> Transform:
    """Gaussian noise of standard deviation = strength, clipped to [0, 1], drawn from ``seed`` (example plugin)"""

    def apply(x: torch.Tensor, sigma: float) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        return (x + sigma * noise).clamp(0.0, 1.0)

    return Transform("gaussian-noise", apply, lambda s: f"σ {s:g}", (0, 0.05, 0.1, 0.2), 1.0)
