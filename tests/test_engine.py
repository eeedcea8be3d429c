"""The unified iteration on the real digits CNN: each source's step, modes, clipping, ε-ball, κ = 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advdb.attacks import UnifiedAttack, create_source
from advdb.attacks.sources import MarginLogit
from advdb.attacks.stats import COL
from advdb.attacks.summary import first_success, summarise
from advdb.attacks.unified import default_tau
from advdb.errors import ConfigError
from advdb.vocabulary import SOURCES as LOSSES
from conftest import digits_batch


@pytest.fixture(scope="module")
def digits():  # noqa: ANN201
    clf, x, y, t = digits_batch(16, 3)
    with torch.no_grad():
        assert (clf.module(x).argmax(1) == y).float().mean() > 0.9
    return clf, x, y, t


# --- the paper's sources written out in plain torch (eqs. 12–15), independent of advdb.attacks ---


def _ref_loss(loss: str, z: torch.Tensor, t: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """Per image: CE(x, t) = −log softmax(z)_t (ce, ce-sign), −z_t (logit), max(max_{j≠t} z_j − z_t, −κ)."""
    z_t = z[torch.arange(len(t)), t]
    if loss in ("ce", "ce-sign"):
        return -(z_t - torch.logsumexp(z, dim=1))
    if loss == "logit":
        return -z_t
    others = torch.stack([torch.cat([row[:k], row[k + 1 :]]).max() for row, k in zip(z, t.tolist(), strict=True)])
    return torch.maximum(others - z_t, torch.full_like(z_t, -kappa))


def _grad(model, x: torch.Tensor, t: torch.Tensor, loss: str, kappa: float = 0.0) -> torch.Tensor:  # noqa: ANN001
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_ref_loss(loss, model(x), t, kappa).sum(), x)
    return g


def _ref_direction(loss: str, g: torch.Tensor) -> torch.Tensor:
    """Pₙ: −sign(∇CE) for ce-sign (eq. 13), −∇L otherwise (for logit, −∇(−z_t) = +∇z_t, eq. 14)."""
    return -torch.sign(g) if loss == "ce-sign" else -g


def _ref_step(P: torch.Tensor, *, mode: str, alpha: float, tau: float, p: float) -> torch.Tensor:
    """αP (equal multiplier); τ·P/‖P‖_p per image, nothing where P = 0 (equal perturbation, eq. 16)."""
    if mode == "equal-multiplier":
        return alpha * P
    flat = P.flatten(1)
    if p == math.inf:
        size = flat.abs().max(dim=1).values
    else:
        size = flat.abs().pow(p).sum(dim=1).pow(1 / p)
    scale = torch.where(size > 0, tau / torch.where(size > 0, size, torch.ones_like(size)), torch.zeros_like(size))
    return scale.view(-1, 1, 1, 1) * P


@pytest.mark.parametrize("kappa", [0.0, 0.7])
@pytest.mark.parametrize("loss", LOSSES)
def test_sources_losses_and_directions_follow_the_equations(loss: str, kappa: float) -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(64, 10, generator=g) * 3
    t = torch.randint(0, 10, (64,), generator=g)
    rows = torch.arange(8)
    z[rows, t[:8]] = z[:8].index_put((rows, t[:8]), torch.full((8,), -1e9)).amax(1) + 0.3  # eight won by 0.3
    z[8:12, :] = 1.0  # all tied: the margin is 0
    src = create_source(loss, **({"kappa": kappa} if loss == "m-logit" else {}))
    torch.testing.assert_close(src.loss(z, t), _ref_loss(loss, z, t, kappa), rtol=1e-6, atol=1e-6)
    grad = torch.randn(5, 1, 4, 4, generator=g)
    grad[0, 0, 0, :2] = 0.0
    torch.testing.assert_close(src.direction(grad), _ref_direction(loss, grad))
    if loss == "m-logit":
        margin = src.loss(z, t)
        torch.testing.assert_close(margin[:8], torch.full((8,), -min(kappa, 0.3)))
        assert (margin[8:12] == 0).all()


def test_m_logit_refuses_a_negative_kappa() -> None:
    z, t = torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([1])
    assert float(create_source("m-logit").loss(z, t)) == 0.0  # κ = 0 unless given: floored at −0, not −4
    assert MarginLogit().kappa == 0.0
    with pytest.raises(ConfigError, match="kappa"):
        create_source("m-logit", kappa=-0.1)


def test_model_parameters_never_require_grad(digits) -> None:  # noqa: ANN001
    clf = digits[0]
    assert not any(p.requires_grad for p in clf.module.parameters())
    assert not clf.module.training


def test_ce_sign_equal_multiplier_step_is_alpha_times_sign(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    x0 = 0.25 + 0.5 * x  # interior: no clipping
    alpha = 2 / 255
    out = UnifiedAttack(loss="ce-sign", mode="equal-multiplier", iterations=1, alpha=alpha).run(
        clf.module, x0, y, t, num_classes=10
    )
    expected = x0 - alpha * torch.sign(_grad(clf.module, x0, t, "ce"))
    assert torch.equal(out.x_adv, expected)
    nnz = (torch.sign(_grad(clf.module, x0, t, "ce")) != 0).flatten(1).sum(1).double()
    np.testing.assert_allclose(out.stats[0, :, COL["step_l2"]].numpy(), (alpha * nnz.sqrt()).numpy(), rtol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
def test_equal_multiplier_step_follows_the_source(digits, loss: str) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    x0 = 0.25 + 0.5 * x
    out = UnifiedAttack(loss=loss, mode="equal-multiplier", iterations=1, alpha=1e-3).run(
        clf.module, x0, y, t, num_classes=10
    )
    P = _ref_direction(loss, _grad(clf.module, x0, t, loss))
    step = _ref_step(P, mode="equal-multiplier", alpha=1e-3, tau=0.0, p=2.0)
    torch.testing.assert_close(out.x_adv, (x0 + step).clamp(0, 1))
    with torch.no_grad():
        first_loss = _ref_loss(loss, clf.module(x0), t)
    torch.testing.assert_close(out.stats[0, :, COL["loss"]], first_loss, rtol=1e-5, atol=1e-5)
    if loss == "logit":  # P = +∇z_t
        x_ = x0.clone().requires_grad_(True)
        (gz,) = torch.autograd.grad(clf.module(x_).gather(1, t[:, None]).sum(), x_)
        torch.testing.assert_close(P, gz)


def test_m_logit_step_uses_its_kappa(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    x0 = 0.25 + 0.5 * x
    with torch.no_grad():
        z = clf.module(x0)
    kappa = float((z.amax(1) - z.gather(1, t[:, None]).squeeze(1)).median())  # half the images already past −κ
    out = UnifiedAttack(
        loss="m-logit", mode="equal-multiplier", iterations=1, alpha=1e-3, loss_params={"kappa": kappa}
    ).run(clf.module, x0, y, t, num_classes=10)
    P = _ref_direction("m-logit", _grad(clf.module, x0, t, "m-logit", kappa))
    torch.testing.assert_close(out.x_adv, (x0 + 1e-3 * P).clamp(0, 1))
    torch.testing.assert_close(out.stats[0, :, COL["loss"]], _ref_loss("m-logit", z, t, kappa), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("norm", [1.0, 2.0, math.inf])
def test_equal_perturbation_step_has_norm_tau(digits, loss: str, norm: float) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    x0 = 0.25 + 0.5 * x
    tau = default_tau(norm, 64) * 0.5
    cfg = UnifiedAttack(loss=loss, mode="equal-perturbation", iterations=1, tau=tau, norm=norm)
    out = cfg.run(clf.module, x0, y, t, num_classes=10)
    step = torch.linalg.vector_norm((out.x_adv - x0).flatten(1), ord=norm, dim=1)
    grad = _grad(clf.module, x0, t, loss)
    nonzero = torch.linalg.vector_norm(grad.flatten(1), dim=1) > 0
    torch.testing.assert_close(step[nonzero], torch.full_like(step[nonzero], tau), rtol=1e-4, atol=1e-7)
    expected = x0 + _ref_step(_ref_direction(loss, grad), mode="equal-perturbation", alpha=0.0, tau=tau, p=norm)
    torch.testing.assert_close(out.x_adv, expected.clamp(0, 1), rtol=1e-4, atol=1e-6)


def test_default_tau_is_one_ifgs_step() -> None:
    D = 3 * 224 * 224
    assert math.isclose(default_tau(2.0, D), math.sqrt(D) / 255)
    assert math.isclose(default_tau(math.inf, D), 1 / 255)
    assert math.isclose(default_tau(1.0, D), D / 255)


@pytest.mark.parametrize("mode", ["equal-multiplier", "equal-perturbation"])
def test_images_stay_in_the_unit_box(digits, mode: str) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    out = UnifiedAttack(loss="logit", mode=mode, iterations=20, alpha=0.2, tau=3.0).run(
        clf.module, x, y, t, num_classes=10
    )
    assert float(out.x_adv.min()) >= 0.0 and float(out.x_adv.max()) <= 1.0


def test_one_step_is_projected_onto_the_epsilon_ball_and_the_box(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    eps, alpha = 0.05, 0.2  # a step of α > ε: every pixel the sign moves ends on the ball's face or the box
    out = UnifiedAttack(loss="ce-sign", mode="equal-multiplier", iterations=1, alpha=alpha, epsilon=eps).run(
        clf.module, x, y, t, num_classes=10
    )
    stepped = x + alpha * _ref_direction("ce-sign", _grad(clf.module, x, t, "ce"))
    lo, hi = torch.clamp(x - eps, min=0.0), torch.clamp(x + eps, max=1.0)
    torch.testing.assert_close(out.x_adv, torch.minimum(torch.maximum(stepped, lo), hi))
    assert out.seconds > 0


def test_a_batch_of_one_image(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    x0 = 0.25 + 0.5 * x[:1]
    out = UnifiedAttack(loss="logit", mode="equal-perturbation", iterations=1, norm=math.inf).run(
        clf.module, x0, y[:1], t[:1], num_classes=10
    )
    torch.testing.assert_close((out.x_adv - x0).abs().max(), torch.tensor(1 / 255))  # default τ: one 1/255 step


def test_epsilon_ball_holds(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    eps = 0.05
    out = UnifiedAttack(loss="ce-sign", iterations=30, alpha=0.02, epsilon=eps).run(clf.module, x, y, t, num_classes=10)
    assert float((out.x_adv - x).abs().max()) <= eps + 1e-6
    assert float(out.stats[:, :, COL["linf"]].max()) <= eps + 1e-6
    assert float(out.x_adv.min()) >= 0 and float(out.x_adv.max()) <= 1


@pytest.mark.parametrize("mode", ["equal-multiplier", "equal-perturbation"])
def test_m_logit_with_kappa_zero_stops_after_success(digits, mode: str) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    cfg = UnifiedAttack(loss="m-logit", mode=mode, iterations=80, alpha=0.01, loss_params={"kappa": 0.0})
    out = cfg.run(clf.module, x, y, t, num_classes=10)
    stats = out.stats.numpy()
    assert np.isfinite(stats).all()
    first = first_success(stats, t.numpy())
    assert (first >= 0).mean() > 0.8
    for b, f in enumerate(first):
        if f >= 0:
            assert (stats[f:, b, COL["step_l2"]] == 0).all()  # flat loss: no more steps
            assert (stats[f:, b, COL["pred"]] == t[b].item()).all()
            assert np.ptp(stats[f:, b, COL["l2"]]) == 0


def test_statistics_describe_each_iterate(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    out = UnifiedAttack(loss="ce", mode="equal-perturbation", iterations=5).run(clf.module, x, y, t, num_classes=10)
    s = out.stats.numpy()
    assert s.shape == (6, 16, len(COL))
    with torch.no_grad():
        z = clf.module(out.x_adv)
    p = z.softmax(1)
    np.testing.assert_allclose(
        s[-1, :, COL["z_target"]], z.gather(1, t[:, None]).squeeze(1).numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        s[-1, :, COL["p_init"]], p.gather(1, y[:, None]).squeeze(1).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        s[-1, :, COL["l2"]], (out.x_adv - x).flatten(1).norm(dim=1).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        s[0, :, COL["loss"]],
        torch.nn.functional.cross_entropy(clf.module(x), t, reduction="none").detach().numpy(),
        rtol=1e-5,
    )
    assert (s[0, :, COL["l2"]] == 0).all() and (s[-1, :, COL["step_l2"]] == 0).all()
    np.testing.assert_allclose(
        s[0, :, COL["grad_l2"]], _grad(clf.module, x, t, "ce").flatten(1).norm(dim=1).numpy(), rtol=1e-4
    )
    # the other class is neither the initial nor the target class
    zo = z.clone()
    zo.scatter_(1, y[:, None], -np.inf).scatter_(1, t[:, None], -np.inf)
    np.testing.assert_allclose(s[-1, :, COL["z_other"]], zo.amax(1).numpy(), rtol=1e-5, atol=1e-5)
    summary = summarise(s, y.numpy(), t.numpy())
    assert summary["n_iterations"][0] == 6


def test_early_stop_ends_a_batch_once_all_succeed(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    cfg = UnifiedAttack(loss="ce", mode="equal-perturbation", iterations=300, early_stop=True, check_every=5, tau=0.5)
    out = cfg.run(clf.module, x, y, t, num_classes=10)
    assert out.rows_per_image < 301
    assert (out.stats[-1, :, COL["pred"]].numpy() == t.numpy()).all()
    # it stops at the first check (every 5th iteration) where every image is the target
    stop = out.rows_per_image - 1
    assert stop % 5 == 0 and stop >= 5
    assert not (out.stats[stop - 5, :, COL["pred"]].numpy() == t.numpy()).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss": "hinge"}, "unknown loss"),
        ({"loss": "ce", "mode": "equal-speed"}, "unknown mode"),
        ({"loss": "ce", "iterations": 0}, "iterations"),
        ({"loss": "ce", "alpha": -1.0}, "--alpha must"),
        ({"loss": "ce", "tau": 0.0}, "--tau must"),
        ({"loss": "ce", "epsilon": 0.0}, "epsilon"),
        ({"loss": "ce", "check_every": 0}, "--check-every must be at least 1, got 0"),
        ({"loss": "ce", "norm": 3.0}, "norm"),
        ({"loss": "ce", "epsilon": -0.1}, "epsilon"),
        ({"loss": "m-logit", "loss_params": {"kappa": -1.0}}, "kappa"),
        ({"loss": "ce", "loss_params": {"kappa": 1.0}}, "kappa"),
    ],
)
def test_bad_hyperparameters_are_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        UnifiedAttack(**kwargs)


def test_smallest_good_hyperparameters() -> None:
    UnifiedAttack(loss="m-logit", check_every=1, iterations=1, epsilon=1e-6, loss_params={"kappa": 0.0})
