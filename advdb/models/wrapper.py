"""The model wrapper: pixel-space images in [0, 1] in, logits out; normalisation inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class PixelSpaceClassifier(nn.Module):
    """``g(x) = net((x − mean) / std)``: attacks work, clip and measure in pixel space.

    Parameters never require grad; the module is in eval mode, so backward computes the
    input gradient only.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def train(self, mode: bool = True) -> PixelSpaceClassifier:
        # Attacks always need eval behaviour (batch-norm statistics, no dropout).
        return super().train(False)
