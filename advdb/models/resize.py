"""A classifier that resizes its input to the size it was trained at, as a deployed pipeline would.

Transfer shows one model's stored adversarial images to another; when the other model was
trained at another resolution (EfficientNet-Lite1 at 240 px, Lite2 at 260 px, the images made
on Lite0 at 224 px), the images are resized on the way in — bilinear, antialiased — and the
transfer run records that it did.
"""

from __future__ import annotations

import torch
from torch import nn


class ResizedInput(nn.Module):
    """``model(resize(x, size))``: bilinear, antialiased, in pixel space."""

    def __init__(self, model: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        return self.model(x)
