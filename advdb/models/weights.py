"""Weight files: a ``torch.save``d state dict read safely (``weights_only``) and loaded into a
network, every failure one :class:`advdb.errors.DataError` line."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from advdb.errors import DataError


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``torch.save`` file (``weights_only``).

    Anything else is one DataError line, with torch's warnings silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's multi-line note on a foreign pickle protocol
            return _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except DataError as exc:
        raise DataError(f"weights file {path}: {exc}") from None
    except Exception as exc:  # corrupt zip, pickle refused by weights_only, truncated file …
        raise DataError(
            f"weights file {path} cannot be loaded ({type(exc).__name__}): is it a torch.save state dict?"
        ) from None


def load_state_into(net: torch.nn.Module, state: dict, path: Path, arch: str) -> None:
    """Load ``state`` into ``net``; a state dict of another architecture is one short DataError."""
    want, have = set(net.state_dict()), set(state) if isinstance(state, dict) else set()
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise DataError(
            f"weights file {path} does not fit {arch}: {len(missing)} missing and {len(unexpected)} unexpected "
            f"tensors (e.g. {example!r}): give a {arch} state dict"
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:200]
        raise DataError(f"weights file {path} does not fit {arch}: {detail}") from None


def _unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError("the weights file holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}
