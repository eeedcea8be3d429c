"""The targeted DLR loss (Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML 2020), as a fifth perturbation source.

With the logits sorted ``z_π1 ≥ z_π2 ≥ …`` and ``y`` the image's initial class, the targeted
Difference of Logits Ratio is

    DLR_t(x) = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2 + 1e-12),

maximised by APGD-T (AutoAttack's ``dlr_loss_targeted``). The unified iteration minimises its
loss, so this source's loss is ``(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)``, with
``Pₙ = −∇`` of it. The ratio is invariant to shifting and scaling the logits, which is why it
needs at least four classes. It runs in both modes of the unified iteration.

This module registers only through advdb's own entry point (``[project.entry-points."advdb.sources"]``
in ``pyproject.toml``: ``dlr = "advdb.attacks.dlr:TargetedDLR"``), exactly as a third party's
source does (:mod:`advdb.plugins`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from advdb.attacks.sources import Source, target_logit


def dlr_targeted(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)`` per row: minus AutoAttack's targeted DLR."""
    top = z.sort(dim=1, descending=True).values
    scale = top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12
    return (target_logit(z, y) - target_logit(z, t)) / scale


class TargetedDLR(Source):
    """targeted DLR loss of Croce & Hein (ICML 2020): (z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2), minimised"""

    uses_initial_class: ClassVar[bool] = True
    min_classes: ClassVar[int] = 4

    def loss(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return dlr_targeted(z, y, t)
