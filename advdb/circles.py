"""The 2-D experiment (Section IV, figure 6): where does each source's gradient vanish?

``make_circles`` (two rings, same centre), a one-hidden-layer ReLU network trained to
separate them, and targeted attacks that move outer-ring points to the inner class with each
of the four sources (recorded like any attack run). Then, on a grid over the plane, the size
``‖Pₙ‖₂`` of each source's perturbation towards the inner class, stored in ``circle_grid``:
the CE gradient vanishes deep inside the target class (Theorem IV.2, S3), the logit one
does not.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from advdb.attacks import create_source
from advdb.data.circles import INNER, OUTER, PLANE_RADIUS, to_pixels
from advdb.devices import resolve_device
from advdb.errors import ConfigError, check_seed
from advdb.models import create_classifier
from advdb.progress import AttackProgress
from advdb.runner import run_attack
from advdb.spec import AttackSpec
from advdb.store.circle_grid import circle_grid_write
from advdb.store.engine import Store
from advdb.store.lifecycle import run_lifecycle
from advdb.store.runs import create_run
from advdb.vocabulary import MODES, SOURCES, check_choice


@dataclass(kw_only=True)
class CirclesSpec:
    """Options of the 2-D experiment (all stored with the run)."""

    n: int = 200
    iterations: int = 100
    mode: str = "equal-perturbation"
    grid: int = 121
    seed: int = 0
    device: str = "auto"
    losses: list[str] = field(default_factory=lambda: list(SOURCES))

    def validate(self) -> None:
        if self.grid < 2 or self.grid > 1000:
            raise ConfigError(f"--grid must be between 2 and 1000 points per side, got {self.grid}")
        if self.n < 1:
            raise ConfigError(f"--n must be at least 1, got {self.n}")
        check_seed(self.seed)
        check_choice(self.mode, MODES, "mode")
        for loss in self.losses:
            check_choice(loss, SOURCES, "loss")


@torch.no_grad()
def _predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = model(x)
    return z.argmax(1), z.softmax(1)[:, INNER]


def gradient_grid(model: torch.nn.Module, *, grid: int, device: torch.device) -> dict[str, dict[str, np.ndarray]]:
    """Per source: ``‖P‖₂`` (towards the inner class) at every grid point, the prediction and p(inner)."""
    axis = np.linspace(-PLANE_RADIUS, PLANE_RADIUS, grid, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)  # gy varies along rows
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    x = torch.from_numpy(to_pixels(pts)[:, :, None, None]).to(device)
    t = torch.full((len(x),), INNER, dtype=torch.long, device=device)
    pred, p_inner = _predict(model, x)
    ix, iy = np.meshgrid(np.arange(grid), np.arange(grid))
    out = {}
    for loss in SOURCES:
        source = create_source(loss)
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(source.loss(model(xg), t).sum(), xg)
        norm = source.direction(g).flatten(1).norm(dim=1)
        out[loss] = {
            "ix": ix.ravel(),
            "iy": iy.ravel(),
            "x": pts[:, 0],
            "y": pts[:, 1],
            "grad_norm": norm.cpu().numpy(),
            "pred": pred.cpu().numpy(),
            "p_target": p_inner.cpu().numpy(),
        }
    return out


def run_circles(store: Store, spec: CirclesSpec, *, progress: AttackProgress | None = None) -> int:
    """Run the experiment; returns the circles run's id (its attack runs are listed in its config)."""
    spec.validate()
    started = time.perf_counter()
    device = resolve_device(spec.device)
    attack_runs: dict[str, int] = {}
    for loss in spec.losses:
        attack_runs[loss] = run_attack(
            store,
            AttackSpec(
                params={"loss": loss, "mode": spec.mode, "iterations": spec.iterations},
                model="circles-mlp",
                dataset="circles",
                n=spec.n,
                batch_size=spec.n,
                device=spec.device,
                seed=spec.seed,
                labels=[OUTER],
                save_images=False,
                name=f"circles {loss}",
            ),
            progress=progress,
        )
    clf = create_classifier("circles-mlp")
    clf.to(device)
    config: dict[str, Any] = {
        **asdict(spec),
        "attack_runs": attack_runs,
        "plane_radius": PLANE_RADIUS,
        "classifier_sha256": clf.weights_sha256,
        "test_accuracy": clf.test_accuracy,
    }
    run = create_run(store, kind="circles", config=config, name="circles", seed=spec.seed, device=str(device))
    with run_lifecycle(
        store, run.run_id, what="circles run", resume=None, prior_seconds=time.perf_counter() - started
    ) as life:
        grid = gradient_grid(clf.module, grid=spec.grid, device=device)

        life.on_finish(
            circle_grid_write(
                run.run_id, {loss: {k: v.tolist() for k, v in cols.items()} for loss, cols in grid.items()}
            )
        )
    return run.run_id
