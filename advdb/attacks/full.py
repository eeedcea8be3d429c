"""The three full attacks as their authors defined them (PAPER_NOTES "The three attacks").

* ``ifgs`` — targeted IFGS/BIM (Kurakin et al.): ``x'ₙ₊₁ = Clip_{x,ε}(x'ₙ − α·sign(∇ₓ CE(x'ₙ, t)))``.
  It *is* the unified iteration with the ``ce-sign`` source, equal multiplier and an
  ε-ball, so it runs on that engine.
* ``cw`` — Carlini & Wagner L2: ``x' = ½(tanh(w)+1)``, minimise ``‖x'−x‖₂² + c·f(x')`` with
  ``f = max(max_{j≠t} z_j − z_t, −κ)`` by Adam on ``w``; per image, ``c`` grows ×10 until an
  attack succeeds, then bisects; early abort when the loss stalls; the smallest-L2
  successful image over the whole search is kept.
* ``lbfgs`` — box-constrained L-BFGS (Szegedy et al.): minimise ``c·‖r‖₂ + CE(x+r, t)`` with
  ``x+r ∈ [0,1]`` by SciPy's L-BFGS-B; per image, ``c`` is searched (×10, then geometric
  bisection) for the *largest* distance weight whose solution is still classified as ``t``
  — equivalently the smallest weight ``1/c`` of the loss, the "smallest c" of the form
  ``‖r‖₂ + c·CE``. The smallest-L2 successful image is kept.

Every model evaluation of CW and L-BFGS is one trajectory row (``search_step`` = index of
the ``c`` being tried), so a query shows how many evaluations each attack spends and where.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from advdb.attacks.engine import BatchOutcome, UnifiedConfig, run_unified, synchronize
from advdb.attacks.registry import ATTACKS, Attack, _build
from advdb.attacks.sources import max_other_logit
from advdb.attacks.stats import StatsBuffer, yt_mask
from advdb.errors import ConfigError


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"--{name} must be a positive number, got {value}")


# --- IFGS -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IFGSConfig:
    """Targeted IFGS/BIM: step ``alpha``, L∞ radius ``epsilon``, ``iterations``."""

    alpha: float = 1 / 255
    epsilon: float = 16 / 255
    iterations: int = 100
    early_stop: bool = False
    check_every: int = 10

    def unified(self) -> UnifiedConfig:
        return UnifiedConfig(loss="ce-sign", mode="equal-multiplier", iterations=self.iterations, alpha=self.alpha,
                             epsilon=self.epsilon, early_stop=self.early_stop, check_every=self.check_every)

    def __post_init__(self) -> None:
        self.unified()  # validates

    def to_dict(self) -> dict:
        return asdict(self)


@ATTACKS.register("ifgs", "targeted IFGS / BIM (Kurakin et al.): α·sign steps inside an ε-ball")
def _ifgs(**params: object) -> Attack:
    cfg: IFGSConfig = _build(IFGSConfig, dict(params), "ifgs")
    ucfg = cfg.unified()
    return Attack(name="ifgs", loss="ce-sign", mode=None, config=cfg,
                  run_batch=lambda m, x, y, t, k: run_unified(m, x, y, t, ucfg, num_classes=k))


# --- Carlini & Wagner L2 ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CWConfig:
    """CW-L2 hyperparameters.

    Defaults suit the digits default (*(default)*: CW's own ImageNet setting was c = 1e-3,
    9 search steps, 1,000 iterations, lr 0.01; pass those for ImageNet).
    """

    c_init: float = 0.1
    search_steps: int = 6
    max_iterations: int = 100
    lr: float = 0.1
    kappa: float = 0.0
    abort_early: bool = True

    def __post_init__(self) -> None:
        _positive("c-init", self.c_init)
        _positive("lr", self.lr)
        if self.search_steps < 1 or self.max_iterations < 1:
            raise ConfigError("--search-steps and --iterations must be at least 1")
        if self.kappa < 0:
            raise ConfigError(f"--kappa must be ≥ 0, got {self.kappa}")

    @property
    def iterations(self) -> int:
        return self.search_steps * self.max_iterations

    def to_dict(self) -> dict:
        return asdict(self)


class _Best:
    """The smallest-L2 successful image per input seen so far (on the device, no sync)."""

    def __init__(self, x0: torch.Tensor) -> None:
        self.x0 = x0
        self.l2 = torch.full((x0.shape[0],), math.inf, device=x0.device)
        self.x = x0.clone()

    def update(self, x: torch.Tensor, ok: torch.Tensor) -> None:
        l2 = (x - self.x0).flatten(1).norm(dim=1)
        better = ok & (l2 < self.l2)
        self.l2 = torch.where(better, l2, self.l2)
        self.x = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x, self.x)


def _outcome(best: _Best, buf: StatsBuffer, steps: np.ndarray, rows: int, t0: float) -> BatchOutcome:
    stats = buf.host()
    synchronize(best.x.device)
    search = torch.from_numpy(np.repeat(steps[:rows, None], best.x.shape[0], 1))
    return BatchOutcome(x_adv=best.x, stats=stats, search_step=search, seconds=time.perf_counter() - t0)


def _register_search_attack(name: str, loss: str, help: str, cfg_cls: type, run: Any) -> None:
    """Register a CW-style attack: ``--iterations`` means iterations per search step."""

    @ATTACKS.register(name, help)
    def _create(**params: object) -> Attack:
        p = dict(params)
        if "iterations" in p:
            p["max_iterations"] = p.pop("iterations")
        cfg = _build(cfg_cls, p, name)
        return Attack(name=name, loss=loss, mode=None, config=cfg,
                      run_batch=lambda m, x, y, t, k: run(m, x, y, t, cfg, num_classes=k))


def _success(z: torch.Tensor, t: torch.Tensor, kappa: float) -> torch.Tensor:
    margin = z.gather(1, t[:, None]).squeeze(1) - max_other_logit(z, t)
    return margin > kappa if kappa > 0 else margin > 0


def _next_c(c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, succeeded: torch.Tensor, *, grow_on_fail: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the per-image search over ``c`` (no host sync).

    ``grow_on_fail``: CW (a larger c makes success easier) grows c ×10 on failure; L-BFGS
    (a larger c makes success harder) shrinks c ÷10 on failure and grows it ×10 on success.
    ``lo``/``hi`` bracket the answer; ``inf``/``0`` mean "no bound yet".
    """
    if grow_on_fail:  # CW: find the smallest successful c
        hi = torch.where(succeeded, torch.minimum(hi, c), hi)
        lo = torch.where(succeeded, lo, torch.maximum(lo, c))
        bisect = (lo + hi) / 2
        c = torch.where(torch.isfinite(hi), bisect, c * 10)
    else:  # L-BFGS: find the largest successful c (geometric bisection)
        lo = torch.where(succeeded, torch.maximum(lo, c), lo)
        hi = torch.where(succeeded, hi, torch.minimum(hi, c))
        both = (lo > 0) & torch.isfinite(hi)
        c = torch.where(both, torch.sqrt(lo.clamp_min(1e-30) * hi.clamp_max(1e30)), torch.where(succeeded, c * 10, c / 10))
    return c, lo, hi


def run_cw(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, cfg: CWConfig, *, num_classes: int) -> BatchOutcome:
    """Carlini & Wagner L2 on one batch; one trajectory row per Adam step."""
    dev = x0.device
    synchronize(dev)
    t0 = time.perf_counter()
    B = x0.shape[0]
    buf = StatsBuffer(cfg.search_steps * cfg.max_iterations, B, dev)
    steps = np.zeros(cfg.search_steps * cfg.max_iterations, dtype=np.int16)
    mask = yt_mask(num_classes, y, t)
    w0 = torch.atanh((x0 * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    c = torch.full((B,), cfg.c_init, device=dev)
    lo = torch.zeros(B, device=dev)
    hi = torch.full((B,), math.inf, device=dev)
    best = _Best(x0)
    row = 0
    check = max(cfg.max_iterations // 10, 1)
    for s in range(cfg.search_steps):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=cfg.lr)
        succeeded = torch.zeros(B, dtype=torch.bool, device=dev)
        prev = math.inf
        x_prev = None
        for i in range(cfg.max_iterations):
            xp = (torch.tanh(w) + 1) / 2
            z = model(xp)
            f = torch.clamp(max_other_logit(z, t) - z.gather(1, t[:, None]).squeeze(1), min=-cfg.kappa)
            dist = (xp - x0).flatten(1).pow(2).sum(1)
            loss = dist + c * f
            opt.zero_grad(set_to_none=True)
            gw, gx = torch.autograd.grad(loss.sum(), [w, xp])
            w.grad = gw
            with torch.no_grad():
                xd = xp.detach()
                buf.record(row, z, y, t, loss, gx, xd - x0, yt_mask=mask)
                if x_prev is not None:
                    buf.record_step(row - 1, xd - x_prev)
                steps[row] = s
                ok = _success(z.detach(), t, cfg.kappa)
                best.update(xd, ok)
                succeeded |= ok
            x_prev = xd
            row += 1
            opt.step()
            if cfg.abort_early and (i + 1) % check == 0:
                total = float(loss.detach().sum())  # host sync every max_iterations/10 steps, as CW
                if total > prev * 0.9999:
                    break
                prev = total
        c, lo, hi = _next_c(c, lo, hi, succeeded, grow_on_fail=True)
    return _outcome(best, buf, steps, row, t0)


_register_search_attack("cw", "m-logit", "Carlini & Wagner L2: tanh variables, Adam, binary search over c, early abort", CWConfig, run_cw)


# --- L-BFGS ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LBFGSConfig:
    """Box-constrained L-BFGS: penalty ``c`` search and SciPy L-BFGS-B limits per search step."""

    c_init: float = 0.1
    search_steps: int = 5
    max_iterations: int = 50
    max_evaluations: int = 100

    def __post_init__(self) -> None:
        _positive("c-init", self.c_init)
        if self.search_steps < 1 or self.max_iterations < 1 or self.max_evaluations < 2:
            raise ConfigError("--search-steps and --iterations must be at least 1")

    @property
    def iterations(self) -> int:
        return self.search_steps * self.max_evaluations

    def to_dict(self) -> dict:
        return asdict(self)


def run_lbfgs(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, cfg: LBFGSConfig, *, num_classes: int) -> BatchOutcome:
    """Box-constrained L-BFGS (SciPy L-BFGS-B on the batch's joint, separable objective).

    Each objective evaluation is one batched forward/backward and one trajectory row; SciPy
    works on the host, so each evaluation synchronises (inherent to the method).
    """
    from scipy.optimize import minimize

    dev = x0.device
    synchronize(dev)
    t_start = time.perf_counter()
    B = x0.shape[0]
    rows_max = cfg.search_steps * (cfg.max_evaluations + 25)  # L-BFGS-B may overshoot maxfun slightly
    buf = StatsBuffer(rows_max, B, dev)
    steps = np.zeros(rows_max, dtype=np.int16)
    mask = yt_mask(num_classes, y, t)
    x0d = x0.double().cpu().numpy().reshape(-1)
    bounds = list(zip((-x0d).tolist(), (1 - x0d).tolist()))
    c = torch.full((B,), cfg.c_init, device=dev)
    lo = torch.zeros(B, device=dev)
    hi = torch.full((B,), math.inf, device=dev)
    best = _Best(x0)
    state = {"row": 0, "prev": None, "succ": None}

    def objective(r_flat: np.ndarray) -> tuple[float, np.ndarray]:
        r = torch.from_numpy(r_flat).to(dev, torch.float32).view_as(x0).requires_grad_(True)
        x = (x0 + r).clamp(0, 1)
        z = model(x)
        ce = nn.functional.cross_entropy(z, t, reduction="none")
        dist = torch.sqrt(r.flatten(1).pow(2).sum(1) + 1e-12)
        loss = c * dist + ce
        (g,) = torch.autograd.grad(loss.sum(), r)
        with torch.no_grad():
            xd = x.detach()
            n = state["row"]
            if n < rows_max:
                buf.record(n, z, y, t, loss, g, xd - x0, yt_mask=mask)
                if state["prev"] is not None:
                    buf.record_step(n - 1, xd - state["prev"])
                steps[n] = state["step"]
                state["row"] = n + 1
            state["prev"] = xd
            ok = z.argmax(1) == t
            best.update(xd, ok)
            state["succ"] |= ok
        return float(loss.detach().sum()), g.double().cpu().numpy().reshape(-1)

    for s in range(cfg.search_steps):
        state["step"] = s
        state["prev"] = None
        state["succ"] = torch.zeros(B, dtype=torch.bool, device=dev)
        minimize(objective, np.zeros_like(x0d), jac=True, method="L-BFGS-B", bounds=bounds,
                 options={"maxiter": cfg.max_iterations, "maxfun": cfg.max_evaluations})
        c, lo, hi = _next_c(c, lo, hi, state["succ"], grow_on_fail=False)
    return _outcome(best, buf, steps, state["row"], t_start)


_register_search_attack("lbfgs", "ce", "box-constrained L-BFGS (Szegedy et al.): c·‖r‖₂ + CE with SciPy L-BFGS-B, search over c",
                        LBFGSConfig, run_lbfgs)
