"""How a run executes on its device: precision, compilation, memory layout and cuDNN tuning.

These settings change trajectories (a bf16 logit, or a TF32 convolution, can flip the sign
of a tiny gradient and move a pixel by 2α), so every run stores them with its configuration
and ``advdb runs show`` shows them; reports say when a table mixes them.

* ``fp32`` (the default): strict float32 everywhere (TF32 off), the same on CPU and GPU.
* ``tf32``: TF32 tensor cores for matmul and convolution on CUDA (PyTorch's own default for
  convolutions); float32 on a CPU, which has no TF32.
* ``bf16``: the model's forward and backward under bf16 autocast, except its last linear
  layer (the classifier head), which computes in float32 outside autocast: logits keep
  float32's resolution instead of being rounded to bf16, where the target and the strongest
  other class often tied exactly. Every statistic, norm, step and clip stays float32.

``compile`` runs the classifier through ``torch.compile``, each prepared model with a cache of
its own (:func:`compile_model`): PyTorch keeps at most 8 compiled versions of one function
and every model of a class shares its ``forward``, so without that the fourth or fifth
architecture of a process would run eager with only a log warning. The first batch of each
shape is preceded by an untimed warm-up (:func:`warm_up`): compilation, cuDNN's autotuning
and lazy kernel loading never land in a stored timing, and a compiled model that captured
no graph there is an error rather than a run that says it compiled. ``memory_format`` lays the
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
import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advdb.errors import ConfigError
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
            "compiled": self.compile,  # every model of the run: compile_model's own cache, checked by warm_up
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


class Float32Linear(nn.Linear):
    """A linear layer that computes in float32 outside autocast (its input cast up): a bf16
    classifier's head, so that its logits are not rounded to bf16's 8-bit mantissa."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


def float32_head(model: nn.Module) -> bool:
    """Make ``model``'s last ``nn.Linear`` (its classifier head) a :class:`Float32Linear`, in place
    (same parameters and state-dict keys); returns whether it had a plain one to change."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None or type(last) not in (nn.Linear, Float32Linear):
        return False
    last.__class__ = Float32Linear
    return True


def set_precision(options: ExecutionOptions, device: torch.device | None = None) -> None:
    """Turn TF32 on for ``tf32`` and off otherwise, and cuDNN's autotuner as ``options`` say
    for ``device`` (process-wide, as PyTorch keeps them)."""
    tf32 = options.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = device is not None and options.cudnn_benchmark(device)


RECOMPILES_PER_MODEL = 8  # PyTorch's default limit: train/eval, grad/no-grad, a smaller last batch fit easily
_compiled_models = 0
# prepared models that torch.compile must have captured at their first warm-up (their cache is their own)
_MUST_CAPTURE: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_WARMED: weakref.WeakKeyDictionary[nn.Module, set[tuple[Any, ...]]] = weakref.WeakKeyDictionary()


def _isolates_recompiles() -> bool:
    """Whether this PyTorch gives each ``torch.compile`` call a cache of its own (``isolate_recompiles``)."""
    return "isolate_recompiles" in inspect.signature(torch.compile).parameters


def compile_model(model: nn.Module, *, backend: str | Callable[..., Any] = "inductor") -> nn.Module:
    """``torch.compile(model)`` that stays compiled however many models a process prepares.

    Dynamo keeps its compiled versions on the code object (``forward``, shared by every model
    of a class) and runs eager, with only a warning, past ``recompile_limit`` (8) of them.
    Where PyTorch offers it, each call gets a cache of its own (``isolate_recompiles``);
    otherwise the per-code limit is raised to room for every model compiled so far. The
    process-wide cap (``accumulated_recompile_limit``) grows with the models either way.
    """
    global _compiled_models
    _compiled_models += 1
    config: Any = torch._dynamo.config
    room = RECOMPILES_PER_MODEL * _compiled_models
    if hasattr(config, "accumulated_cache_size_limit"):
        config.accumulated_cache_size_limit = max(config.accumulated_cache_size_limit, 256 + room)
    isolated: dict[str, Any] = {}
    if _isolates_recompiles():
        isolated = {"isolate_recompiles": True, "recompile_limit": RECOMPILES_PER_MODEL}
    else:
        config.cache_size_limit = max(config.cache_size_limit, room)
    compiled: nn.Module = torch.compile(model, backend=backend, **isolated)  # type: ignore[assignment]
    if isolated:
        _MUST_CAPTURE.add(compiled)
    return compiled


def _captured_graphs() -> int:
    """Graphs dynamo has captured in this process so far (its own counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def warm_up(model: nn.Module, x: torch.Tensor) -> None:
    """Run ``model`` once as an attack does — a forward and the input gradient, and a forward
    without gradient — on a batch shaped like ``x``, once per (model, shape) per process.

    Called before an attack's timer starts, so that compiling (a smaller last batch
    recompiles), cuDNN's autotuning and lazy kernel loading are not timed. A model from
    :func:`compile_model` that captures no graph at its first warm-up ran eager: a ConfigError.
    """
    key = (tuple(x.shape), x.dtype, x.device)
    seen = _WARMED.setdefault(model, set())
    if key in seen:
        return
    must_capture = not seen and _unwrapped(model) in _MUST_CAPTURE
    graphs = _captured_graphs() if must_capture else 0
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(model(xg).float().sum(), xg)
    with torch.no_grad():
        model(x.detach())
    seen.add(key)
    if must_capture and _captured_graphs() == graphs:
        raise ConfigError("torch.compile captured no graph of the model, so it ran eager: run without --compile")


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.model if isinstance(model, BF16Autocast) else model


def prepare(model: nn.Module, device: torch.device, options: ExecutionOptions, *, in_place: bool = False) -> nn.Module:
    """``model`` as a run executes it: backends set, laid out, compiled and under bf16 autocast (its
    head in float32) as ``options`` ask. Layout and head apply to a copy unless ``in_place`` (a
    model being trained, whose parameters an optimiser holds)."""
    set_precision(options, device)
    bf16, channels_last = options.precision == "bf16", options.channels_last(device)
    prepared: nn.Module = model if in_place or not (bf16 or channels_last) else copy.deepcopy(model)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    if bf16:
        float32_head(prepared)
    if options.compile:
        prepared = compile_model(prepared)
    if bf16:
        prepared = BF16Autocast(prepared, device.type)
    return prepared
