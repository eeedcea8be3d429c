"""The 2-D experiment's classifier: one hidden ReLU layer, trained deterministically on use."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import torch
from torch import nn

from advdb.data.circles import PLANE_RADIUS, Circles

HIDDEN = 64
EPOCHS = 400
SEED = 0


def circles_mlp(hidden: int = HIDDEN) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))


@lru_cache(maxsize=1)
def train_circles_mlp() -> tuple[nn.Module, dict]:
    """Full-batch Adam on ``circles-train`` (plane coordinates); a second or so on a CPU."""
    train, test = Circles(split="train"), Circles(split="test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = circles_mlp()
    x, y = torch.from_numpy(train.points), torch.from_numpy(train.labels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(EPOCHS):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(test.points)).argmax(1) == torch.from_numpy(test.labels)).float().mean())
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.numpy().tobytes())
    # pixel space [0,1]² ↔ plane [-R, R]²: (x − 0.5) / (1 / 2R)
    return net, {"sha256": h.hexdigest(), "test_accuracy": acc, "mean": [0.5, 0.5], "std": [1 / (2 * PLANE_RADIUS)] * 2}
