"""Detector networks: the small CNN or a torchvision classifier with a fresh two-way head,
wrapped with resizing, channel adaptation and normalisation."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from advdb.detectors.spec import SMALL_ARCH, DetectorSpec
from advdb.errors import ConfigError, DataError
from advdb.models.classifiers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_state_file,
    load_state_into,
    torchvision_cache_file,
)
from advdb.models.digits_cnn import digits_cnn


def _replace_last_linear(net: nn.Module, out_features: int) -> None:
    """Swap the final linear layer for a fresh ``out_features``-way one (Kaiming init)."""
    parent, name, last = None, None, None
    for module in net.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                parent, name, last = module, child_name, child
    if last is None or parent is None or name is None:
        raise ConfigError("this architecture has no final linear layer to replace")
    new = nn.Linear(last.in_features, out_features)
    nn.init.kaiming_normal_(new.weight, nonlinearity="relu")
    nn.init.zeros_(new.bias)
    setattr(parent, name, new)


class _Detector(nn.Module):
    """Resize, channel adaptation and normalisation around the detector network."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, *, size: int | None, channels: int, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.net, self.size, self.channels = net, size, channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self.net((x - self.mean) / self.std)


def pretrained_weights(spec: DetectorSpec) -> Path | None:
    """The ImageNet weights a torchvision detector starts from: ``--weights``, else torchvision's cache if there."""
    if spec.arch == SMALL_ARCH:
        return None
    if spec.weights:
        path = Path(spec.weights).expanduser()
        if not path.exists():
            raise DataError(f"weights file {path} does not exist")
        return path
    cached = torchvision_cache_file(spec.arch)
    return cached if cached is not None and cached.exists() else None


def build_detector(spec: DetectorSpec, image_shape: tuple[int, ...]) -> nn.Module:
    """The detector network, initialised from :func:`pretrained_weights` where there are any."""
    torch.manual_seed(spec.seed)
    if spec.arch == SMALL_ARCH:
        c = int(image_shape[0])
        net = digits_cnn(num_classes=2, channels=c)
        if image_shape[-1] > 8:  # larger images (28×28 MNIST): pooled to the 2×2 its classifier head takes
            layers = list(net.children())
            net = nn.Sequential(*layers[:8], nn.AdaptiveMaxPool2d(2), *layers[8:])
        _replace_last_linear(net, 2)
        size = spec.image_size or (8 if image_shape[-1] < 8 else None)
        return _Detector(net, size=size, channels=c, mean=(0.5,) * c, std=(0.25,) * c)
    import torchvision

    net = torchvision.models.get_model(spec.arch, weights=None, num_classes=1000)
    path = pretrained_weights(spec)
    if path is not None:
        load_state_into(net, load_state_file(path), path, spec.arch)
    _replace_last_linear(net, 2)
    return _Detector(net, size=spec.image_size or 224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
