"""Box-constrained L-BFGS (Szegedy et al.; Section II): minimise ``c·‖r‖₂ + CE(x+r, t)`` with
``x+r ∈ [0,1]`` by SciPy's L-BFGS-B; per image, ``c`` is searched (×10, then geometric
bisection) for the *largest* distance weight whose solution is still classified as ``t`` —
equivalently the smallest weight ``1/c`` of the loss, the "smallest c" of the form
``‖r‖₂ + c·CE``. The smallest-L2 successful image is kept.

Every objective evaluation is one batched forward/backward and one trajectory row
(``search_step`` = index of the ``c`` being tried); SciPy works on the host, so each
evaluation synchronises (inherent to the method). What crosses to the host is bounded:
``r`` goes to the device and the gradient comes back once per evaluation each, in the
images' dtype, through two host buffers reused by every evaluation (pinned on CUDA). The
box is two float64 arrays handed straight to SciPy's L-BFGS-B routine
(:func:`minimize_lbfgsb`): ``scipy.optimize.minimize`` would turn any bounds into a Python
list of one tuple per pixel and loop over it in Python (about 4 GB and minutes per search
step for 250 ImageNet images).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advdb.attacks.base import Attack, BatchOutcome, Timer, check_positive
from advdb.attacks.factory import register_attack
from advdb.attacks.search import BestImages, SearchState, search_outcome
from advdb.attacks.sources import CrossEntropy
from advdb.attacks.stats import StatsBuffer, prediction, yt_mask
from advdb.errors import ConfigError

OVERSHOOT = 25  # L-BFGS-B may evaluate a few more times than maxfun per search step

# scipy.optimize.minimize's defaults for method="L-BFGS-B" (maxcor, ftol, gtol, maxls)
_MAXCOR, _FTOL, _GTOL, _MAXLS = 10, 2.2204460492503131e-09, 1e-5, 20

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@register_attack("lbfgs", "box-constrained L-BFGS (Szegedy et al.): c·‖r‖₂ + CE with SciPy L-BFGS-B, search over c")
@dataclass(frozen=True, kw_only=True)
class LBFGS(Attack):
    """``search_steps`` values of ``c`` from ``c_init``; SciPy's limits per search step:
    ``max_iterations``, ``max_evaluations``."""

    loss = "ce"
    option_aliases = {"iterations": "max_iterations"}

    c_init: float = 0.1
    search_steps: int = 5
    max_iterations: int = 50
    max_evaluations: int = 100

    def __post_init__(self) -> None:
        check_positive("c-init", self.c_init)
        if self.search_steps < 1 or self.max_iterations < 1 or self.max_evaluations < 2:
            raise ConfigError("--search-steps and --iterations must be at least 1")

    def budget(self) -> int:
        return self.search_steps * self.max_evaluations

    def run(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *, num_classes: int
    ) -> BatchOutcome:
        timer = Timer(x0.device)
        objective = _Objective(model, x0, y, t, self, num_classes)
        lower, upper = box_bounds(x0)
        for s in range(self.search_steps):
            objective.begin_step(s)
            minimize_lbfgsb(
                objective, lower, upper, max_iterations=self.max_iterations, max_evaluations=self.max_evaluations
            )
            objective.search.advance(objective.succeeded, grow_on_fail=False)
        return search_outcome(objective.best, objective.buf, objective.steps, objective.row, timer)


def box_bounds(x0: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of ``r`` that keep ``x0 + r`` in ``[0, 1]``, flat: ``-x0`` and ``1 - x0`` as two
    float64 arrays (16 bytes a pixel, no Python object per pixel)."""
    lower = x0.detach().to("cpu", torch.float64).numpy().reshape(-1)
    np.negative(lower, out=lower)
    return lower, lower + 1.0  # 1 + (-x) is exactly 1 - x in IEEE arithmetic


def _setulb() -> Callable[..., None] | None:
    """SciPy's L-BFGS-B routine, where it has the interface :func:`minimize_lbfgsb` drives (SciPy ≥ 1.15)."""
    try:
        from scipy.optimize import _lbfgsb
    except ImportError:  # pragma: no cover - a SciPy that moved it
        return None
    routine = getattr(_lbfgsb, "setulb", None)
    return routine if routine is not None and "ln_task" in (routine.__doc__ or "") else None


def minimize_lbfgsb(
    fun: Objective, lower: np.ndarray, upper: np.ndarray, *, max_iterations: int, max_evaluations: int
) -> np.ndarray:
    """``scipy.optimize.minimize(fun, 0, jac=True, method="L-BFGS-B", bounds=…, options={"maxiter":
    max_iterations, "maxfun": max_evaluations})`` from ``r = 0``, step for step (the same routine,
    inputs and evaluations), with the finite box given as arrays; returns the last iterate.

    SciPy's wrapper would build and loop over one Python tuple per variable; this loop does not.
    An older SciPy without that routine's interface goes through ``minimize`` with the same result.
    """
    setulb = _setulb()
    n = lower.size
    if setulb is None:
        from scipy.optimize import Bounds, minimize

        options = {"maxiter": max_iterations, "maxfun": max_evaluations}
        res = minimize(fun, np.zeros(n), jac=True, method="L-BFGS-B", bounds=Bounds(lower, upper), options=options)
        return np.asarray(res.x)
    memo = _Memo(fun)
    x = np.clip(np.zeros(n), lower, upper)
    m, nbd = _MAXCOR, np.full(n, 2, dtype=np.int32)  # 2: bounded below and above
    f: float | np.ndarray = np.array(0.0)  # as SciPy starts it
    g = np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa, task, ln_task = np.zeros(3 * n, np.int32), np.zeros(2, np.int32), np.zeros(2, np.int32)
    lsave, isave, dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29)
    factr, iterations = _FTOL / np.finfo(float).eps, 0
    while True:
        g = g.astype(np.float64)
        setulb(m, x, lower, upper, nbd, f, g, factr, _GTOL, wa, iwa, task, lsave, isave, dsave, _MAXLS, ln_task)
        if task[0] == 3:  # the routine wants f and g at x
            f, g = memo(x)
        elif task[0] == 1:  # a new iterate
            iterations += 1
            if iterations >= max_iterations:
                task[:] = 5, 504
            elif memo.evaluations > max_evaluations:
                task[:] = 5, 502
        else:
            return x


class _Memo:
    """``fun`` evaluated once per distinct point, as SciPy's ``ScalarFunction`` does (it counts them)."""

    def __init__(self, fun: Objective) -> None:
        self.fun, self.evaluations = fun, 0
        self.x: np.ndarray | None = None
        self.value: tuple[float, np.ndarray] = (0.0, np.zeros(0))

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.x is None or not np.array_equal(x, self.x):
            self.x = x.copy()
            self.value = self.fun(self.x)
            self.evaluations += 1
        return self.value


class _HostLink:
    """The host side of the evaluations: ``r`` goes to the device and the gradient comes back once
    per evaluation each, in the images' dtype, through two buffers every evaluation reuses (pinned
    on CUDA, so each copy is one DMA)."""

    def __init__(self, x0: torch.Tensor) -> None:
        dtype = x0.dtype if x0.dtype in (torch.float16, torch.float32, torch.float64) else torch.float32
        pin = x0.device.type == "cuda"
        self.device = x0.device
        self.up = torch.empty(x0.shape, dtype=dtype, pin_memory=pin)
        self.down = torch.empty(x0.shape, dtype=dtype, pin_memory=pin)

    def upload(self, r_flat: np.ndarray) -> torch.Tensor:
        """``r`` on the device (on a CPU, the buffer itself: it is rewritten only by the next evaluation)."""
        np.copyto(self.up.numpy().reshape(-1), r_flat, casting="same_kind")
        return self.up.to(self.device, non_blocking=True).detach()

    def download(self, g: torch.Tensor) -> np.ndarray:
        """The gradient as the float64 vector SciPy takes (a blocking copy: the next upload may then
        rewrite its buffer)."""
        self.down.copy_(g)
        return self.down.numpy().astype(np.float64).reshape(-1)


class _Objective:
    """SciPy's objective and gradient for the whole batch (separable per image), recording each evaluation."""

    def __init__(
        self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, attack: LBFGS, num_classes: int
    ) -> None:
        self.model, self.x0, self.y, self.t = model, x0, y, t
        self.rows_max = attack.search_steps * (attack.max_evaluations + OVERSHOOT)
        self.buf = StatsBuffer(self.rows_max, x0.shape[0], x0.device)
        self.steps = np.zeros(self.rows_max, dtype=np.int16)
        self.mask = yt_mask(num_classes, y, t)
        self.search = SearchState(attack.c_init, x0.shape[0], x0.device)
        self.best = BestImages(x0)
        self.source = CrossEntropy()
        self.link = _HostLink(x0)
        self.row, self.step = 0, 0
        self.prev: torch.Tensor | None = None
        self.succeeded = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)

    def begin_step(self, step: int) -> None:
        self.step, self.prev = step, None
        self.succeeded = torch.zeros_like(self.succeeded)

    def __call__(self, r_flat: np.ndarray) -> tuple[float, np.ndarray]:
        x0 = self.x0
        r = self.link.upload(r_flat).requires_grad_(True)
        x = (x0 + r).clamp(0, 1)
        z = self.model(x)
        dist = torch.sqrt(r.flatten(1).pow(2).sum(1) + 1e-12)
        loss = self.search.c * dist + self.source.loss(z, self.t)
        (g,) = torch.autograd.grad(loss.sum(), r)
        with torch.no_grad():
            xd = x.detach()
            if self.row < self.rows_max:
                self.buf.record(self.row, z, self.y, self.t, loss, g, xd - x0, yt_mask=self.mask)
                if self.prev is not None:
                    self.buf.record_step(self.row - 1, xd - self.prev)
                self.steps[self.row] = self.step
                self.row += 1
            self.prev = xd
            ok = prediction(z, self.t) == self.t  # a tie is no success, as in every attack
            self.best.update(xd, ok)
            self.succeeded |= ok
        return float(loss.detach().sum()), self.link.download(g)
