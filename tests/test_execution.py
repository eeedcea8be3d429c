"""Execution options (precision, compile): stored with every run, and findings that do not
depend on them — the fidelity guard on the digits default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advdb.attacks import create_attack
from advdb.attacks.summary import summarise
from advdb.errors import ConfigError
from advdb.execution import ExecutionOptions, prepare
from advdb.vocabulary import SOURCES
from conftest import digits_batch


@pytest.fixture(scope="module")
def digits():  # noqa: ANN201
    return digits_batch(64, 3)


def test_compiled_fp32_trajectories_equal_eager_ones(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    x, y, t = x[:16], y[:16], t[:16]
    attack = create_attack("unified", loss="logit", mode="equal-perturbation", iterations=8)
    eager = attack.run(clf.module, x, y, t, num_classes=10)
    options = ExecutionOptions(compile=True, memory_format="contiguous")
    compiled = attack.run(prepare(clf.module, torch.device("cpu"), options), x, y, t, num_classes=10)
    torch.testing.assert_close(compiled.stats, eager.stats, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(compiled.x_adv, eager.x_adv, rtol=0, atol=1e-5)


def test_channels_last_trajectories_equal_contiguous_ones(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    attack = create_attack("unified", loss="ce", mode="equal-perturbation", iterations=20)
    contiguous = attack.run(clf.module, x, y, t, num_classes=10)
    model = prepare(clf.module, torch.device("cpu"), ExecutionOptions(memory_format="channels-last"))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert next(m for m in clf.module.modules() if isinstance(m, torch.nn.Conv2d)).weight.is_contiguous()  # a copy
    channels_last = attack.run(model, x, y, t, num_classes=10)
    torch.testing.assert_close(channels_last.stats, contiguous.stats, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(channels_last.x_adv, contiguous.x_adv, rtol=0, atol=1e-5)


def test_auto_layout_is_channels_last_on_a_cpu_and_when_compiled_on_cuda() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert ExecutionOptions().channels_last(cpu) and ExecutionOptions(compile=True).channels_last(cpu)
    assert not ExecutionOptions().channels_last(cuda) and ExecutionOptions(compile=True).channels_last(cuda)
    assert not ExecutionOptions(memory_format="contiguous").channels_last(cpu)
    assert ExecutionOptions(memory_format="channels-last").channels_last(cuda)
    assert not ExecutionOptions().cudnn_benchmark(cuda) and ExecutionOptions(precision="bf16").cudnn_benchmark(cuda)
    assert not ExecutionOptions(precision="bf16").cudnn_benchmark(cpu)


def _outcomes(clf, x, y, t, options: ExecutionOptions) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    """Per source: success rate and mean first-success iteration (equal perturbation, T = 100)."""
    model = prepare(clf.module, torch.device("cpu"), options)
    out = {}
    for loss in SOURCES:
        run = create_attack("unified", loss=loss, mode="equal-perturbation", iterations=100).run(
            model, x, y, t, num_classes=10
        )
        s = summarise(run.stats.numpy(), y.numpy(), t.numpy())
        first = s["first_success_iter"]
        out[loss] = (float(np.mean(~np.isnan(first))), float(np.nanmean(first)))
    return out


def test_bf16_reaches_the_same_findings_as_fp32(digits) -> None:  # noqa: ANN001
    clf, x, y, t = digits
    fp32 = _outcomes(clf, x, y, t, ExecutionOptions())
    bf16 = _outcomes(clf, x, y, t, ExecutionOptions(precision="bf16"))
    for loss in SOURCES:
        assert abs(bf16[loss][0] - fp32[loss][0]) <= 2 / len(y), (loss, fp32, bf16)  # the same success, ± 2 images
    order = sorted(SOURCES, key=lambda k: fp32[k][1])
    assert sorted(SOURCES, key=lambda k: bf16[k][1]) == order, (fp32, bf16)


def test_bad_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        ExecutionOptions(precision="fp16")
    with pytest.raises(ConfigError, match="unknown memory format 'nhwc'"):
        ExecutionOptions(memory_format="nhwc")


def test_options_are_stored_shown_and_noted_by_reports(tmp_path, cli) -> None:  # noqa: ANN001
    import json

    url = f"sqlite:///{tmp_path / 'store.db'}"
    common = ["--db", url, "attack", "--mode", "equal-perturbation", "-n", "12", "-T", "10", "--no-save-images"]
    for loss, precision in (("ce", "fp32"), ("logit", "bf16")):
        code, _, err = cli(*common, "--loss", loss, "--precision", precision)
        assert code == 0, err
    code, out, _ = cli("--db", url, "runs", "show", "2", "--json")
    config = json.loads(out)["config"]
    assert config["precision"] == "bf16" and config["compile"] is False and config["memory_format"] == "auto"
    assert config["resolved"]["execution"] == {
        "memory_format": "channels-last",
        "cudnn_benchmark": False,
        "compiled": False,
    }
    code, out, err = cli("--db", url, "report", "table1", "--out", str(tmp_path / "reports"))
    assert code == 0, err
    assert "run 1 fp32, run 2 bf16" in err
    code, _, err = cli(*common, "--precision", "fp16")
    assert code == 2 and "fp16" in err and "Traceback" not in err
