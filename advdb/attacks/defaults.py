"""Hyperparameter defaults that depend on the data set, applied where the user gives none.

An L∞ radius fits the images it bounds: the paper's IFGS ε = 16/255 is a budget for
224×224 ImageNet photographs; on the 8×8 digits it lets 4 % of the images reach their
target, so the study's IFGS row would say little. The digits get ε = 0.3, the usual L∞
budget for handwritten digits (MNIST). Measured on the digits default (`digits-cnn`, 200
images, random targets, T = 300, α = 1/255, seed 0), IFGS success: ε = 16/255 → 4 %,
0.1 → 9 %, 0.2 → 68 %, 0.3 → 96 %, 0.4 → 100 %. CW and L-BFGS keep their defaults there:
CW (c = 0.1, lr = 0.1) reaches 100 %; L-BFGS reaches 91 % with c = 0.01, 0.1 or 1 alike
(68 % with c = 10; 92 % with twice the iterations), so no other c does better.
The real MNIST digits (28×28, ``mnist``) get the same ε = 0.3; the ImageNet sample keeps the
paper's 16/255 (its images are the photographs that budget was made for).

The resolved hyperparameters are stored with every run (``config.resolved.attack``).
"""

from __future__ import annotations

from typing import Any

DATASET_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "digits": {"ifgs": {"epsilon": 0.3}},
    "mnist": {"ifgs": {"epsilon": 0.3}},
}


def dataset_defaults(attack: str, dataset: str) -> dict[str, Any]:
    """The defaults of ``attack``'s hyperparameters on ``dataset`` (empty: the attack's own)."""
    return dict(DATASET_DEFAULTS.get(dataset, {}).get(attack, {}))
