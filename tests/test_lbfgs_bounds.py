"""L-BFGS at ImageNet size: the box is two arrays, SciPy's routine is driven without a Python
object per pixel, and the iterates are SciPy's own, step for step."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from advdb.attacks import LBFGS
from advdb.attacks.lbfgs import _MAXCOR, box_bounds, minimize_lbfgsb

IMAGENET_BATCH = (4, 3, 224, 224)


def _peak_bytes(fn) -> int:  # noqa: ANN001
    """The peak of Python and NumPy allocations while ``fn`` runs (torch's own are not traced)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_box_is_two_float64_arrays_not_a_tuple_per_pixel() -> None:
    x0 = torch.rand(IMAGENET_BATCH, generator=torch.Generator().manual_seed(0))
    numel = x0.numel()
    lower, upper = box_bounds(x0)
    assert lower.dtype == upper.dtype == np.float64 and lower.shape == upper.shape == (numel,)
    x = x0.double().numpy().reshape(-1)
    assert np.array_equal(lower, -x) and np.array_equal(upper, 1 - x)
    # a list of (lo, hi) tuples costs over 100 bytes a pixel; two float64 arrays cost 16
    assert _peak_bytes(lambda: box_bounds(x0)) <= 2 * 8 * numel + 65536


def test_an_imagenet_batch_costs_only_l_bfgs_b_s_own_workspace() -> None:
    """Beyond L-BFGS-B's workspace ((2m + 5) float64 and 3 int32 a variable), a few float64 vectors:
    ``scipy.optimize.minimize`` would add a Python tuple and two floats per pixel, and loop over them."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(IMAGENET_BATCH, generator=g)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 10))
    y, t = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8])
    attack = LBFGS(search_steps=1, max_iterations=2, max_evaluations=3)
    peak = _peak_bytes(lambda: attack.run(model, x0, y, t, num_classes=10))
    workspace = (2 * _MAXCOR + 5) * 8 + 3 * 4
    assert peak < x0.numel() * (workspace + 16 * 8)


def _problem(n: int) -> tuple:  # noqa: ANN001
    """A bounded, non-quadratic objective whose optimum lies partly outside the box."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)
    x0 = rng.uniform(0, 1, size=n)
    lower, upper = -x0, 1 - x0

    def f(r: np.ndarray) -> tuple[float, np.ndarray]:
        d = r - a
        return float((b * d**2).sum() + np.sin(3 * r).sum()), 2 * b * d + 3 * np.cos(3 * r)

    return f, lower, upper


@pytest.mark.parametrize("max_iterations, max_evaluations", [(15, 30), (50, 7), (3, 100)])
def test_the_driver_takes_scipy_s_steps(max_iterations: int, max_evaluations: int) -> None:
    f, lower, upper = _problem(40)
    seen: dict[str, list[np.ndarray]] = {"scipy": [], "ours": []}

    def recording(name: str):  # noqa: ANN202
        def fun(r: np.ndarray) -> tuple[float, np.ndarray]:
            seen[name].append(r.copy())
            return f(r)

        return fun

    bounds = list(zip(lower.tolist(), upper.tolist(), strict=True))
    options = {"maxiter": max_iterations, "maxfun": max_evaluations}
    res = minimize(recording("scipy"), np.zeros(40), jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    x = minimize_lbfgsb(recording("ours"), lower, upper, max_iterations=max_iterations, max_evaluations=max_evaluations)
    assert len(seen["ours"]) == len(seen["scipy"]) > 2
    assert all(np.array_equal(a, b) for a, b in zip(seen["ours"], seen["scipy"], strict=True))
    assert np.array_equal(x, res.x)
