"""How a run executes on its device: precision, compilation, memory layout and cuDNN tuning.

These settings change trajectories (a bf16 logit, or a TF32 convolution, can flip the sign
of a tiny gradient and move a pixel by 2α), so every run stores them with its configuration
and ``advdb runs show`` shows them; reports say when a table mixes them.

* ``fp32`` (the default): strict float32 everywhere (TF32 off), the same on CPU and GPU.
* ``tf32``: TF32 tensor cores for matmul and convolution on CUDA (PyTorch's own default for
  convolutions); float32 on a CPU, which has no TF32.
* ``bf16``: the model's forward and backward under bf16 autocast; its logits come back as
  float32, and every statistic, norm, step and clip stays float32.

``compile`` runs the classifier through ``torch.compile``. ``memory_format`` lays the
classifier's weights out ``channels-last`` or ``contiguous``; ``auto`` picks what measured
faster (``benchmarks/gpu.py``): channels-last on a CPU (oneDNN's NHWC kernels, about 1.2× on
the digits CNN) and on CUDA when compiled (eager channels-last is slower on an H100). Both
layouts compute in float32; only the order of the sums differs (trajectories agree within
1e-4, ``tests/test_execution.py``). cuDNN's autotuner (``cudnn.benchmark``) is on for the
fast precisions (``tf32``, ``bf16``) on CUDA and off for strict ``fp32``, whose algorithm
choice then stays the same from run to run.

Planning (which images the classifier gets right) always uses the eager float32
classifier as loaded, so runs that differ only in these settings attack the same images
towards the same targets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advdb.vocabulary import DEFAULT_MEMORY_FORMAT, DEFAULT_PRECISION, MEMORY_FORMATS, PRECISIONS, check_choice


@dataclass(frozen=True, kw_only=True)
class ExecutionOptions:
    precision: str = DEFAULT_PRECISION
    compile: bool = False
    memory_format: str = DEFAULT_MEMORY_FORMAT

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.memory_format, MEMORY_FORMATS, "memory format")

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "compile": self.compile, "memory_format": self.memory_format}

    def channels_last(self, device: torch.device) -> bool:
        """Whether the classifier runs channels-last on ``device`` (``auto``: where it measured faster)."""
        if self.memory_format != "auto":
            return self.memory_format == "channels-last"
        return device.type == "cpu" or self.compile

    def cudnn_benchmark(self, device: torch.device) -> bool:
        """cuDNN's autotuner: on for the fast precisions on CUDA, off for strict fp32."""
        return device.type == "cuda" and self.precision != "fp32"

    def resolved(self, device: torch.device) -> dict[str, Any]:
        """What ``auto`` and the precision came to on ``device``, stored with the run."""
        return {
            "memory_format": "channels-last" if self.channels_last(device) else "contiguous",
            "cudnn_benchmark": self.cudnn_benchmark(device),
        }


@dataclass(kw_only=True)
class ExecutionFields:
    """The execution options as fields of a run's specification (attack and detector specs
    inherit them), stored with its configuration."""

    precision: str = DEFAULT_PRECISION
    compile: bool = False
    memory_format: str = DEFAULT_MEMORY_FORMAT

    @property
    def execution(self) -> ExecutionOptions:
        """How the run computes; part of its configuration."""
        return ExecutionOptions(precision=self.precision, compile=self.compile, memory_format=self.memory_format)


class BF16Autocast(nn.Module):
    """``model`` under bf16 autocast, its output returned as float32."""

    def __init__(self, model: nn.Module, device_type: str) -> None:
        super().__init__()
        self.model, self.device_type = model, device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            z: torch.Tensor = self.model(x)
        return z.float()


def set_precision(options: ExecutionOptions, device: torch.device | None = None) -> None:
    """Turn TF32 on for ``tf32`` and off otherwise, and cuDNN's autotuner as ``options`` say
    for ``device`` (process-wide, as PyTorch keeps them)."""
    tf32 = options.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = device is not None and options.cudnn_benchmark(device)


def prepare(model: nn.Module, device: torch.device, options: ExecutionOptions, *, in_place: bool = False) -> nn.Module:
    """``model`` as a run executes it: backends set, laid out, compiled and under bf16 autocast as
    ``options`` ask. A channels-last layout applies to a copy unless ``in_place`` (a model being
    trained, whose parameters an optimiser holds)."""
    set_precision(options, device)
    prepared: nn.Module = model
    if options.channels_last(device):
        prepared = (model if in_place else copy.deepcopy(model)).to(memory_format=torch.channels_last)
    if options.compile:
        prepared = torch.compile(prepared)  # type: ignore[assignment]
    if options.precision == "bf16":
        prepared = BF16Autocast(prepared, device.type)
    return prepared
