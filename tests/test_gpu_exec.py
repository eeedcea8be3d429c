"""The GPU path as a user takes it, checked on a CPU: untimed warm-up, compilation that stays on
for every model of a process, one GPU per torchrun rank, and bf16 predictions without ties."""

from __future__ import annotations

import functools
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advdb import execution
from advdb.attacks import create_attack
from advdb.attacks.stats import COL, StatsBuffer, prediction, yt_mask
from advdb.devices import cuda_index, resolve_device
from advdb.errors import ConfigError
from advdb.execution import ExecutionOptions, Float32Linear, compile_model, prepare, warm_up
from conftest import digits_batch

CPU = torch.device("cpu")

# --- warm-up: stored timings measure steady iterations -------------------------------------------


class SlowFirstCall(nn.Module):
    """``model``, with a first call per input shape that takes ``clock.slow`` seconds more on
    ``clock``, as compiling for that shape would."""

    def __init__(self, model: nn.Module, clock: VirtualClock) -> None:
        super().__init__()
        self.model, self.clock = model, clock
        self.shapes: set[torch.Size] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape not in self.shapes:
            self.shapes.add(x.shape)
            self.clock.lag += self.clock.slow
        return self.model(x)


class VirtualClock:
    """``time.perf_counter`` plus the virtual seconds slow calls add: timings in which only
    those show, whatever else this (shared, busy) machine is doing."""

    slow = 100.0

    def __init__(self) -> None:
        self.lag = 0.0

    def perf_counter(self) -> float:
        return time.perf_counter() + self.lag


def test_first_batches_of_each_shape_are_not_outliers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from advdb import worker
    from advdb.attacks import base
    from advdb.runner import AttackSpec, run_attack
    from advdb.store import open_store

    clock = VirtualClock()
    monkeypatch.setattr(base, "time", SimpleNamespace(perf_counter=clock.perf_counter))  # the attacks' Timer
    monkeypatch.setattr(worker, "prepare", lambda *a, **k: SlowFirstCall(prepare(*a, **k), clock))
    db = tmp_path / "store.db"
    spec = AttackSpec(params={"loss": "ce", "iterations": 5}, n=10, batch_size=4, save_images=False)
    with open_store(f"sqlite:///{db}") as store:
        run_attack(store, spec)
    with sqlite3.connect(db) as con:
        seconds = dict(con.execute("SELECT batch_index, attack_seconds FROM batches").fetchall())
    assert sorted(seconds) == [0, 1, 2]  # 4 + 4 + 2 images: two shapes, each slow once
    assert clock.lag == 2 * clock.slow  # both slow calls happened ...
    assert max(seconds.values()) < clock.slow / 10, seconds  # ... and neither in a stored timing


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin, self.calls = nn.Linear(3, 2), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.lin(x)


def test_warm_up_runs_once_per_model_and_shape() -> None:
    model = Counting()
    warm_up(model, torch.rand(4, 3))
    assert model.calls == 2  # with the input gradient, and without gradient
    warm_up(model, torch.rand(4, 3))
    assert model.calls == 2
    warm_up(model, torch.rand(2, 3))
    assert model.calls == 4
    other = Counting()
    warm_up(other, torch.rand(4, 3))
    assert other.calls == 2


def test_a_compiled_model_that_captured_nothing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Counting()
    monkeypatch.setattr(execution, "_MUST_CAPTURE", {model})  # as compile_model registers it
    with pytest.raises(ConfigError, match="ran eager"):
        warm_up(model, torch.rand(4, 3))


# --- --compile stays on for every model of a process ---------------------------------------------


def _train_steps(model: nn.Module, channels: int) -> None:
    """Two training steps (a batch and a smaller last one) and an evaluation, as a detector's epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01)
    model.train()
    for batch in (4, 3):
        x, y = torch.rand(batch, channels, 8, 8), torch.arange(batch) % 2
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        model(torch.rand(5, channels, 8, 8))


def test_compile_stays_on_for_every_detector_of_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.utils import counters

    from advdb.detectors import DetectorSpec, build_detector

    # dynamo's caches and limits are what is at stake, not inductor's code: the eager backend keeps it fast
    monkeypatch.setattr(execution, "compile_model", functools.partial(compile_model, backend="eager"))
    options = ExecutionOptions(compile=True, memory_format="contiguous")
    assert options.resolved(CPU)["compiled"] is True
    captured = []
    for channels in range(1, 7):  # six architectures (each its own input channels): past dynamo's 8 versions
        net = build_detector(DetectorSpec(sources=[1]), (channels, 8, 8))
        model = prepare(net, CPU, options, in_place=True)
        before = counters["stats"]["unique_graphs"]
        _train_steps(model, channels)
        captured.append(counters["stats"]["unique_graphs"] - before)
    assert all(n > 0 for n in captured), captured  # every detector compiled, none fell back to eager


# --- one GPU per torchrun rank --------------------------------------------------------------------


def test_cuda_index_follows_local_rank() -> None:
    torchrun = {"LOCAL_RANK": "3", "RANK": "7", "WORLD_SIZE": "8"}
    assert cuda_index(None, 4, torchrun) == 3
    assert cuda_index(None, 2, torchrun) == 1  # more ranks than GPUs: shared evenly
    assert cuda_index(None, 1, torchrun) == 0  # one visible GPU per rank (CUDA_VISIBLE_DEVICES)
    assert cuda_index(None, 4, {}) == 0  # alone
    assert cuda_index(2, 4, torchrun) == 2  # cuda:N as asked
    with pytest.raises(ConfigError, match="only 4 CUDA GPU"):
        cuda_index(5, 4, {})
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        cuda_index(None, 0, torchrun)


def test_plain_cuda_under_torchrun_is_the_ranks_gpu_and_made_current(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("auto") == torch.device("cuda", 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 2), torch.device("cuda", 2), torch.device("cuda", 1)]
    assert resolve_device("cpu") == CPU and len(chosen) == 3


# --- bf16: predictions without ties -------------------------------------------------------------


def test_prediction_counts_the_target_only_on_a_strict_lead() -> None:
    z = torch.tensor([[1.0, 3.0, 3.0], [1.0, 3.0, 2.0], [4.0, 3.0, 3.0], [3.0, 3.0, 1.0]])
    t = torch.tensor([1, 1, 2, 1])
    assert prediction(z, t).tolist() == [2, 1, 0, 0]  # a tie with the target goes to the other class
    assert z.argmax(1).tolist()[0] == 1  # where argmax alone would have called it a success
    buf = StatsBuffer(1, 4, CPU)
    y = torch.tensor([0, 0, 0, 0])
    buf.record(0, z, y, t, torch.zeros(4), None, torch.zeros(4, 3), yt_mask=yt_mask(3, y, t))
    assert buf.host()[0, :, COL["pred"]].tolist() == [2.0, 1.0, 0.0, 0.0]


def test_final_and_saved_predictions_follow_the_same_rule() -> None:
    from advdb.worker import final_summary

    class Tied(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[0.0, 2.0, 2.0]]).expand(len(x), -1)

    x = torch.zeros(2, 1, 2, 2)
    cols = final_summary(Tied(), x, x, torch.tensor([1, 2]))
    assert cols["final_pred"].tolist() == [2, 1]


def test_the_bf16_head_computes_in_float32() -> None:
    clf, x, _, _ = digits_batch(16, 3)
    model = prepare(clf.module, CPU, ExecutionOptions(precision="bf16"))
    assert isinstance(list(model.modules())[-1], Float32Linear)
    assert not any(isinstance(m, Float32Linear) for m in clf.module.modules())  # a copy, not the classifier
    with torch.no_grad():
        z = model(x)
    assert (z.bfloat16().float() != z).float().mean() > 0.5  # float32's resolution, not bf16's


@pytest.fixture(scope="module")
def digits():  # noqa: ANN201
    return digits_batch(32, 6)  # targets under which bf16-rounded logits tie, the target first among them


def _ties(model: nn.Module, digits) -> tuple[int, int, int]:  # noqa: ANN001
    """m-logit in bf16: rows where the target ties the strongest other logit, those of them counted
    successful, and the successful rows."""
    _, x, y, t = digits
    out = create_attack("unified", loss="m-logit", mode="equal-perturbation", iterations=100).run(
        model, x, y, t, num_classes=10
    )
    s = out.stats.numpy()
    strongest_other = np.maximum(s[:, :, COL["z_other"]], s[:, :, COL["z_init"]])
    tied = s[:, :, COL["z_target"]] == strongest_other
    success = s[:, :, COL["pred"]] == t.numpy()[None]
    return int(tied.sum()), int((tied & success).sum()), int(success.sum())


def test_bf16_logits_do_not_tie(digits) -> None:  # noqa: ANN001
    tied, _, success = _ties(prepare(digits[0].module, CPU, ExecutionOptions(precision="bf16")), digits)
    assert success > 0 and tied == 0


def test_a_bf16_tie_is_never_a_success(digits, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(execution, "float32_head", lambda model: False)  # logits rounded to bf16: ties happen
    tied, tied_successes, success = _ties(prepare(digits[0].module, CPU, ExecutionOptions(precision="bf16")), digits)
    assert tied > 0 and success > 0 and tied_successes == 0
