"""Devices: which one a process uses, and how a run records it."""

from __future__ import annotations

import os

import torch

from advdb.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present (``cuda:LOCAL_RANK`` under torchrun), else CPU.

    An unavailable or unknown device is a ConfigError.
    """
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = os.environ.get("LOCAL_RANK")
        index = int(local_rank) % torch.cuda.device_count() if local_rank and local_rank.isdigit() else 0
        return torch.device("cuda", index)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible: use --device auto or cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}: use auto, cpu or cuda[:N]")
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
