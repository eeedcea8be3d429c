"""How a run executes on its device: numerical precision and compilation.

These settings change trajectories (a bf16 logit, or a TF32 convolution, can flip the sign
of a tiny gradient and move a pixel by 2α), so every run stores them with its configuration
and ``advdb runs show`` shows them; reports say when a table mixes them.

* ``fp32`` (the default): strict float32 everywhere (TF32 off), the same on CPU and GPU.
* ``tf32``: TF32 tensor cores for matmul and convolution on CUDA (PyTorch's own default for
  convolutions); float32 on a CPU, which has no TF32.
* ``bf16``: the model's forward and backward under bf16 autocast; its logits come back as
  float32, and every statistic, norm, step and clip stays float32.

``compile`` runs the classifier through ``torch.compile``. Planning (which images the
classifier gets right) always uses the eager float32 classifier, so runs that differ only
in these settings attack the same images towards the same targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advdb.vocabulary import DEFAULT_PRECISION, PRECISIONS, check_choice


@dataclass(frozen=True, kw_only=True)
class ExecutionOptions:
    precision: str = DEFAULT_PRECISION
    compile: bool = False

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISIONS, "precision")

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "compile": self.compile}


class BF16Autocast(nn.Module):
    """``model`` under bf16 autocast, its output returned as float32."""

    def __init__(self, model: nn.Module, device_type: str) -> None:
        super().__init__()
        self.model, self.device_type = model, device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            z: torch.Tensor = self.model(x)
        return z.float()


def set_precision(options: ExecutionOptions) -> None:
    """Turn TF32 on for ``tf32`` and off otherwise (process-wide, as PyTorch keeps it)."""
    tf32 = options.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def prepare(model: nn.Module, device: torch.device, options: ExecutionOptions) -> nn.Module:
    """``model`` as a run executes it: TF32 set, compiled and under bf16 autocast as ``options`` ask."""
    set_precision(options)
    prepared: nn.Module = model
    if options.compile:
        prepared = torch.compile(prepared)  # type: ignore[assignment]
    if options.precision == "bf16":
        prepared = BF16Autocast(prepared, device.type)
    return prepared
