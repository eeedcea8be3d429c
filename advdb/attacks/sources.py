"""The paper's four perturbation sources (PAPER_NOTES "The four perturbation sources").

Each source is a loss to *minimise* and a map from that loss's input gradient to the
perturbation ``Pₙ`` added to ``xₙ``:

=========  ==================================  ==========================================
name       loss ``L(x)``                        ``Pₙ``
=========  ==================================  ==========================================
ce         ``CE(x, t) = −log s_t``               ``−∇ₓ CE``            (eq. 12, L-BFGS)
ce-sign    ``CE(x, t)``                          ``−sign(∇ₓ CE)``      (eq. 13, IFGS)
logit      ``−z_t``                              ``+∇ₓ z_t``           (eq. 14)
m-logit    ``max(max_{j≠t} z_j − z_t, −κ)``      ``−∇ₓ`` of that       (eq. 15, CW)
=========  ==================================  ==========================================

With κ = 0 the m-logit loss is flat (gradient exactly 0) once ``z_t`` leads every other
logit, so m-logit stops moving after success.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES: tuple[str, ...] = ("ce", "ce-sign", "logit", "m-logit")


def max_other_logit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``max_{j≠t} z_j`` per row."""
    return z.scatter(1, t[:, None], float("-inf")).amax(1)


def source_loss(loss: str, z: torch.Tensor, t: torch.Tensor, *, kappa: float = 0.0) -> torch.Tensor:
    """Per-image loss of source ``loss`` for logits ``z`` [B, M] and targets ``t`` [B]."""
    if loss in ("ce", "ce-sign"):
        return F.cross_entropy(z, t, reduction="none")
    z_t = z.gather(1, t[:, None]).squeeze(1)
    if loss == "logit":
        return -z_t
    if loss == "m-logit":
        return torch.clamp(max_other_logit(z, t) - z_t, min=-kappa)
    raise ValueError(f"unknown loss {loss!r}")


def perturbation(loss: str, grad: torch.Tensor) -> torch.Tensor:
    """``Pₙ`` from the gradient of the source's loss: ``−sign(g)`` for ce-sign, ``−g`` otherwise."""
    return -torch.sign(grad) if loss == "ce-sign" else -grad
