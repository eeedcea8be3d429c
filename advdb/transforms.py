"""Input transformations that defend a classifier: a registry of the standard ones (like timm's).

Each takes a batch of images, float32 ``[N, C, H, W]`` in [0, 1], and a *strength*: 0 leaves
the images as they are (the curve's first point: no defense); larger is stronger. The
strength is the transformation's own parameter where that grows with it (blur σ, TV weight,
median radius) and counts down from "no change" where it does not (JPEG quality 100 − s,
bits 8 − s), so every curve reads the same way. The work is done by well-kept libraries:
torchvision.transforms.v2 (blur, posterize), Pillow (JPEG, median) and scikit-image (TV).
Other packages add theirs through the ``advdb.transforms`` entry-point group (:mod:`advdb.plugins`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from advdb.errors import ConfigError
from advdb.registry import Registry, check_params


@dataclass(frozen=True)
class Transform:
    """A transformation: how to apply it, what its strength means and the strengths swept by default."""

    name: str
    apply: Callable[[torch.Tensor, float], torch.Tensor]  # strength > 0
    parameter: Callable[[float], str]  # the strength in the transformation's own terms
    default_strengths: tuple[float, ...]
    max_strength: float
    integer: bool = False

    def __call__(self, x: torch.Tensor, strength: float) -> torch.Tensor:
        """``x`` transformed at ``strength`` (``x`` itself at 0)."""
        if strength == 0:
            return x
        return self.apply(x, strength)

    def check(self, strengths: list[float]) -> list[float]:
        """``strengths`` sorted and checked; a bad one is a ConfigError naming the range."""
        for s in strengths:
            if not (math.isfinite(s) and 0 <= s <= self.max_strength) or (self.integer and s != int(s)):
                kind = "a whole number" if self.integer else "a number"
                raise ConfigError(
                    f"--strength {s:g} is out of range for {self.name}: {kind} from 0 to {self.max_strength:g}"
                )
        if len(set(strengths)) != len(strengths):
            raise ConfigError("--strength lists a value twice")
        return sorted(float(s) for s in strengths)


TRANSFORMS: Registry[Callable[..., Transform]] = Registry("transform")


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """As an 8-bit image would store it (the PNG files are already exactly this)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _pil_each(x: torch.Tensor, fn: Callable) -> torch.Tensor:  # noqa: ANN001
    """Apply ``fn`` to each image as a Pillow image (mode L or RGB); back to float32 in [0, 1]."""
    from PIL import Image

    pixels = _to_uint8(x).permute(0, 2, 3, 1).numpy()
    out = []
    for img in pixels:
        pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        arr = np.asarray(fn(pil), dtype=np.uint8)
        out.append(arr[:, :, None] if arr.ndim == 2 else arr)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * min(x.shape[-2:]) - 1)  # reflect padding needs less than the image's side
    return F.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])


def _jpeg(x: torch.Tensor, strength: float) -> torch.Tensor:
    def encode(pil):  # noqa: ANN001, ANN202
        from PIL import Image

        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(100 - strength))
        buf.seek(0)
        with Image.open(buf) as im:
            return im.convert(pil.mode)

    return _pil_each(x, encode)


def _bit_depth(x: torch.Tensor, strength: float) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    return F.posterize(_to_uint8(x), bits=8 - int(strength)).float() / 255.0


def _median(x: torch.Tensor, radius: float) -> torch.Tensor:
    from PIL import ImageFilter

    return _pil_each(x, lambda pil: pil.filter(ImageFilter.MedianFilter(size=2 * int(radius) + 1)))


def _tv(x: torch.Tensor, weight: float) -> torch.Tensor:
    from skimage.restoration import denoise_tv_chambolle

    arr = x.permute(0, 2, 3, 1).double().numpy()
    out = np.stack([denoise_tv_chambolle(img, weight=weight, channel_axis=-1) for img in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().clamp(0, 1)


@TRANSFORMS.register("gaussian-blur", "Gaussian blur of σ = strength pixels (torchvision)")
def _create_gaussian_blur() -> Transform:
    return Transform("gaussian-blur", _gaussian_blur, lambda s: f"σ {s:g}", (0, 0.25, 0.5, 0.75, 1, 1.5), 10)


@TRANSFORMS.register("jpeg", "JPEG re-encoding at quality 100 − strength (Pillow)")
def _create_jpeg() -> Transform:
    return Transform(
        "jpeg", _jpeg, lambda s: "none" if s == 0 else f"quality {100 - s:g}", (0, 10, 25, 50, 75, 90), 99, True
    )


@TRANSFORMS.register("bit-depth", "bit-depth reduction to 8 − strength bits (torchvision posterize)")
def _create_bit_depth() -> Transform:
    return Transform("bit-depth", _bit_depth, lambda s: f"{8 - s:g} bits", (0, 2, 4, 5, 6, 7), 7, True)


@TRANSFORMS.register("median", "median filter of (2·strength + 1)² pixels (Pillow)")
def _create_median() -> Transform:
    return Transform(
        "median", _median, lambda s: "none" if s == 0 else f"{2 * s + 1:g}×{2 * s + 1:g}", (0, 1, 2), 7, True
    )


@TRANSFORMS.register("tv", "total-variation denoising of weight = strength (scikit-image, Chambolle)")
def _create_tv() -> Transform:
    return Transform("tv", _tv, lambda s: f"weight {s:g}", (0, 0.02, 0.05, 0.1, 0.2, 0.4), 10)


def check_transform_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against the hyperparameters transform ``name`` declares (its factory's
    keyword-only parameters), converted to their types; a bad one is one ConfigError line."""
    return check_params(TRANSFORMS.get(name), params, what="transform", name=name)


def create_transform(name: str, **params: Any) -> Transform:
    """The transformation called ``name`` (see :func:`list_transforms`) with its hyperparameters, if it has any.

    A plugin's transform (an ``advdb.transforms`` entry point, :mod:`advdb.plugins`) is a function
    returning a :class:`Transform`; it is known by its entry point's name.
    """
    made = TRANSFORMS.get(name)(**check_transform_params(name, params))
    if not isinstance(made, Transform):
        raise ConfigError(
            f"transform {name!r} did not make an advdb.transforms.Transform (it made {type(made).__name__})"
        )
    return made if made.name == name else replace(made, name=name)


def list_transforms() -> dict[str, str]:
    """Every transformation's name and what its strength means."""
    return TRANSFORMS.describe()
