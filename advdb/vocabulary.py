"""advdb's vocabulary: every name a run, a report or the command line can use, in one place.

Torch-free and import-free, so the store, the reports and the CLI's choices all read the
same lists. The attacks themselves live in :mod:`advdb.attacks`; a test checks that its
registries hold exactly the names listed here.
"""

from __future__ import annotations

import math

from advdb.errors import ConfigError

#: The paper's four perturbation sources (Section III, eqs. 12–15), in the paper's order.
SOURCES: tuple[str, ...] = ("ce", "ce-sign", "logit", "m-logit")
DEFAULT_SOURCE = "ce-sign"

#: The unified iteration's two step-size rules (Section III-B): αₙ = α, or αₙ = τ / ‖Pₙ‖_p (eq. 16).
MODES: tuple[str, ...] = ("equal-multiplier", "equal-perturbation")
DEFAULT_MODE = "equal-multiplier"

#: The full attacks of Section II, as their authors defined them.
FULL_ATTACKS: tuple[str, ...] = ("ifgs", "cw", "lbfgs")
#: ``unified`` is the paper's iteration with one source (Section III).
ATTACKS: tuple[str, ...] = ("unified", *FULL_ATTACKS)
#: Options of ``advdb attack`` that only the unified iteration takes.
UNIFIED_ONLY: tuple[str, ...] = ("loss", "mode", "tau", "norm")

#: How a run picks each image's target class.
TARGET_RULES: tuple[str, ...] = ("random", "least-likely")

#: Adversarial image files: 8-bit PNG (what a classifier would be shown) or float32 ``.npy`` (exact).
IMAGE_FORMATS: tuple[str, ...] = ("png", "npy")

RUN_KINDS: tuple[str, ...] = ("attack", "detector", "circles", "transfer", "defense")
RUN_STATUSES: tuple[str, ...] = ("planned", "running", "finished", "failed", "interrupted")

#: How a run computes (advdb.execution): strict float32, TF32 tensor cores, or bf16 autocast.
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"

#: The classifier's memory layout (advdb.execution): chosen per device by measurement, or forced.
MEMORY_FORMATS: tuple[str, ...] = ("auto", "contiguous", "channels-last")
DEFAULT_MEMORY_FORMAT = "auto"

#: Detector optimisers and the presets of ``advdb reproduce``.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")

#: The input transformations ``advdb defend`` applies (advdb.transforms), in the order reports show them.
TRANSFORMS: tuple[str, ...] = ("gaussian-blur", "jpeg", "bit-depth", "median", "tv")

#: The optimiser settings ``advdb retrain --sweep`` (and the presets, for torchvision detectors)
#: train in turn; the tables report the best. Adam at 1e-3 is what trains a small detector from
#: scratch; pretrained torchvision networks often need 1e-4; SGD at 0.01 is the classic recipe.
DETECTOR_SWEEP: tuple[tuple[str, float], ...] = (("adam", 1e-3), ("adam", 1e-4), ("sgd", 1e-2))
PRESETS: tuple[str, ...] = ("digits", "imagenet", "imagenet-sample", "mnist")

#: What ``advdb list`` can list.
CATALOGUES: tuple[str, ...] = ("models", "datasets", "attacks", "losses", "transforms")

#: What the trajectory records of each image at each iteration, besides its prediction: softmax
#: ``p_*`` and logit ``z_*`` of the initial class, the target and the strongest other class; the
#: loss; the L2 norms of its gradient and of the step taken; L1/L2/L∞ of ``xₙ − x₀``.
TRAJECTORY_MEASURES: tuple[str, ...] = (
    "p_init", "p_target", "p_other", "z_init", "z_target", "z_other",
    "loss", "grad_l2", "step_l2", "l1", "l2", "linf",
)  # fmt: skip

#: p of the equal-perturbation step (eq. 16).
NORMS: tuple[float, ...] = (1.0, 2.0, math.inf)


def parse_norm(value: str | float) -> float:
    """``1``, ``2`` or ``inf`` (also ``linf``) as a float p; anything else is a ConfigError."""
    s = str(value).strip().lower()
    if s in ("inf", "linf", "infinity"):
        return math.inf
    try:
        p = float(s)
    except ValueError:
        raise ConfigError(f"invalid norm {value!r}: use 1, 2 or inf") from None
    if p not in NORMS:
        raise ConfigError(f"invalid norm {value!r}: use 1, 2 or inf")
    return p


def parse_run_ids(value: str | None, option: str) -> list[int] | None:
    """Run ids as users write them, separated by commas (``3,4,5``); ``option`` names where, in the error."""
    if not value:
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{option} takes run ids separated by commas, such as 3,4,5; got {value!r}") from None


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``choices``, else a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value
