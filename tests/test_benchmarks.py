"""The benchmark scripts still import and parse their options (they are run by hand, not by the
suite); how ``gpu.py`` measures (a process and compile caches of its own per measurement) is
checked at a tiny size."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_imports_and_shows_its_help(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [script.name, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_gpu_benchmark_measures_each_command_in_its_own_process_with_cold_caches() -> None:
    """The bare loop and the command each run in a process of their own, with empty compile caches
    of their own, and report their own peak GPU memory (none on a CPU)."""
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPTS[0].parent / "gpu.py")
    assert spec is not None and spec.loader is not None
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    import torch

    from advdb.execution import ExecutionOptions

    device = "cuda" if torch.cuda.is_available() else "cpu"
    run = gpu.base_spec(device, 4, 4)
    run.params = {"loss": "ce-sign", "iterations": 1}
    if device == "cuda":  # a small network, so that the test stays quick
        run.model, run.image_shape = "resnet18", (3, 32, 32)
    measured = [gpu.measure_bare(run, ExecutionOptions(), 1), gpu.measure_command(run)]
    for m in measured:
        assert m.cold_cache and m.seconds > 0 and all(m.caches)
        assert (m.peak_bytes is None) == (device == "cpu")
        assert not any(os.environ.get(v) == c for v, c in zip(gpu.CACHE_VARIABLES, m.caches, strict=True))
    assert set(measured[0].caches).isdisjoint(measured[1].caches)
    assert measured[1].stored_seconds is not None and measured[1].stored_seconds > 0
