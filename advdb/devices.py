"""Devices: which one a process uses, and how a run records it."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from advdb.errors import ConfigError
from advdb.launch import local_rank


def cuda_index(requested: int | None, device_count: int, environ: Mapping[str, str] | None = None) -> int:
    """The CUDA device a process uses: ``requested`` (``cuda:N``) as asked; otherwise, under
    torchrun, its ``LOCAL_RANK`` (modulo the visible GPUs, so more ranks than GPUs share them
    evenly, and one visible GPU per rank is GPU 0 for each); otherwise GPU 0.

    No GPU, or a requested index past the visible ones, is a ConfigError.
    """
    if device_count < 1:
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible: use --device auto or cpu")
    if requested is not None:
        if requested >= device_count:
            raise ConfigError(f"--device cuda:{requested} asked for, but only {device_count} CUDA GPU(s) are visible")
        return requested
    rank = local_rank(environ)
    return rank % device_count if rank is not None else 0


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` (or ``auto`` on a GPU) → ``cuda:LOCAL_RANK``
    under torchrun, else ``cuda:0``; ``cuda:N`` as asked (:func:`cuda_index`).

    The CUDA device chosen becomes the process's current one (``torch.cuda.set_device``), so
    that nothing, CUDA's own context included, lands on another rank's GPU. An unavailable or
    unknown device is a ConfigError.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}: use auto, cpu or cuda[:N]")
    if dev.type == "cpu":
        return dev
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    dev = torch.device("cuda", cuda_index(dev.index, count))
    torch.cuda.set_device(dev)
    return dev


def torch_versions(dev: torch.device) -> dict[str, str]:
    """torch's own build (with its CUDA flavour) and the GPU's CUDA/cuDNN versions."""
    out = {"torch": str(torch.__version__)}
    if dev.type == "cuda":
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
        out["gpu"] = torch.cuda.get_device_name(dev)
    return out


def device_description(dev: torch.device) -> str:
    """``cpu``, or ``cuda:N:<GPU name>`` (at most 64 characters, as the store keeps it)."""
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0}:{torch.cuda.get_device_name(dev)}"[:64]
    return "cpu"
