"""Per-iteration statistics, computed on the device into a preallocated ``[T+1, B, K]`` tensor.

Row ``n`` describes ``xₙ``: the prediction (:func:`prediction`: the target only when its logit
strictly leads, so a tie is never a success); softmax ``p`` and logit ``z`` of the initial
class ``y``, the target ``t`` and the strongest class that is neither (``other``); the loss
at ``xₙ``; the L2 norm of the loss gradient; the L2 size of the step taken from ``xₙ``; and
L1/L2/L∞ of ``xₙ − x₀``. Nothing here synchronises with the host.
"""

from __future__ import annotations

import torch

from advdb.vocabulary import TRAJECTORY_MEASURES

STAT_COLUMNS: tuple[str, ...] = ("pred", *TRAJECTORY_MEASURES)
COL = {name: i for i, name in enumerate(STAT_COLUMNS)}
K = len(STAT_COLUMNS)


class StatsBuffer:
    """A ``[T+1, B, K]`` float32 buffer on the model's device, filled row by row."""

    def __init__(self, rows: int, batch: int, device: torch.device) -> None:
        self.data = torch.zeros((rows, batch, K), dtype=torch.float32, device=device)
        self.rows_used = 0

    def record(
        self,
        n: int,
        z: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        loss: torch.Tensor,
        grad: torch.Tensor | None,
        delta: torch.Tensor,
        *,
        yt_mask: torch.Tensor,
    ) -> None:
        """Fill row ``n`` (all but ``step_l2``). ``yt_mask`` is a [B, M] bool mask of ``y`` and ``t``."""
        z = z.detach()
        p = z.softmax(1)
        zy = torch.stack((z.gather(1, y[:, None]).squeeze(1), z.gather(1, t[:, None]).squeeze(1)), 1)
        py = torch.stack((p.gather(1, y[:, None]).squeeze(1), p.gather(1, t[:, None]).squeeze(1)), 1)
        z_other = z.masked_fill(yt_mask, float("-inf")).amax(1)
        p_other = p.masked_fill(yt_mask, 0.0).amax(1)
        g = per_image_norm(grad, 2.0) if grad is not None else torch.zeros_like(z_other)
        row = torch.stack(
            (
                prediction(z, t).float(),
                py[:, 0],
                py[:, 1],
                p_other,
                zy[:, 0],
                zy[:, 1],
                z_other,
                loss.detach().float(),
                g,
                torch.zeros_like(g),
                per_image_norm(delta, 1.0),
                per_image_norm(delta, 2.0),
                per_image_norm(delta, float("inf")),
            ),
            1,
        )
        self.data[n].copy_(row)
        self.rows_used = max(self.rows_used, n + 1)

    def record_step(self, n: int, step: torch.Tensor) -> None:
        self.data[n, :, COL["step_l2"]] = per_image_norm(step, 2.0)

    def host(self) -> torch.Tensor:
        """The used rows, copied to the host once."""
        return self.data[: self.rows_used].cpu()


def per_image_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    """Per-image Lp norm of ``v`` [B, …], reduced in place over every other dimension: no flattened
    copy of a channels-last tensor and no ``abs()`` temporary (one read of ``v``)."""
    norm: torch.Tensor = torch.linalg.vector_norm(v, ord=p, dim=tuple(range(1, v.dim())))
    return norm


def prediction(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The predicted class of logits ``z`` [B, M] for targets ``t`` [B]: ``argmax z``, except that the
    target counts only when ``z_t`` strictly exceeds every other logit; a tie with it goes to
    the other class (lowest index first, as ``argmax``). Every attack's success, the stored
    final prediction and a saved image's prediction follow this rule, the rule of CW's own
    check with κ = 0 (``z_t − max_{j≠t} z_j > 0``)."""
    others = z.scatter(1, t[:, None], float("-inf"))
    leads = z.gather(1, t[:, None]).squeeze(1) > others.amax(1)
    return torch.where(leads, t, others.argmax(1))


def yt_mask(num_classes: int, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    m = torch.zeros((len(y), num_classes), dtype=torch.bool, device=y.device)
    m.scatter_(1, y[:, None], True)
    m.scatter_(1, t[:, None], True)
    return m
