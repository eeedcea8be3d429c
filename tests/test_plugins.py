"""Plugins through entry points (advdb.plugins): the example plugin installed from examples/, used from
the command line and the API; bad hyperparameters; broken plugins; advdb's own DLR source; APGD-T."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import advdb
from advdb import vocabulary
from advdb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "advdb-plugin-example"
SOURCE, TRANSFORM, DIST = "softmax-target", "gaussian-noise", "advdb-plugin-example"

BROKEN_METADATA = "Metadata-Version: 2.1\nName: advdb-broken-plugin\nVersion: 0.3\n"
BROKEN_ENTRY_POINTS = "[advdb.sources]\nbroken = advdb_broken_plugin:Nope\nce = advdb_broken_plugin:Clash\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin installed into a folder of its own (the venv is left alone)."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*cmd, "--target", str(tmp / "site"), str(tmp / "src")], check=True, capture_output=True, timeout=300
    )
    return tmp / "site"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distribution whose source fails to import, and whose other source clashes with ``ce``."""
    tmp = tmp_path_factory.mktemp("broken")
    info = tmp / "advdb_broken_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(BROKEN_METADATA)
    (info / "entry_points.txt").write_text(BROKEN_ENTRY_POINTS)
    (tmp / "advdb_broken_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")
    return tmp


def _env(*paths: Path) -> dict[str, str]:
    extra = os.pathsep.join(str(p) for p in paths)
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": extra + (os.pathsep + old if old else ""), "OMP_NUM_THREADS": "1"}


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advdb", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def runs_in(db: Path) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute("SELECT run_id, kind, loss, versions, config FROM runs ORDER BY run_id").fetchall()


@pytest.fixture(scope="module")
def plugin_runs(site: Path, advdb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with an attack run of the plugin's source and a defense run of its transform (the CLI's)."""
    db = tmp_path_factory.mktemp("plugin-store") / "store.db"
    env = _env(site)
    out = run(
        env, "--db", str(db), "attack", "--loss", SOURCE, "--param", "temperature=2", "--mode", "equal-perturbation",
        "--tau", "1", "-n", "4", "-T", "8", "--device", "cpu",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = run(
        env, "--db", str(db), "defend", "--sources", "1", "--transform", TRANSFORM, "--param", "seed=3",
        "--strength", "0,0.1", "--device", "cpu", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"], out.stdout
    return db


def test_the_plugin_is_listed_and_offered_without_importing_it(site: Path) -> None:
    env = _env(site)
    losses, transforms = run(env, "list", "losses"), run(env, "list", "transforms")
    assert losses.returncode == 0 and SOURCE in losses.stdout and "dlr" in losses.stdout, losses.stderr
    assert TRANSFORM in transforms.stdout and not losses.stderr and not transforms.stderr
    assert SOURCE in run(env, "attack", "--help").stdout and TRANSFORM in run(env, "defend", "--help").stdout
    code = (
        "import sys, advdb.cli.app; from advdb.cli.options import Loss; print([m.value for m in Loss]); "
        "assert 'advdb_plugin_example' not in sys.modules and 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and SOURCE in out.stdout, out.stderr


def test_the_plugin_source_and_transform_run_and_are_stored(plugin_runs: Path) -> None:
    (attack_id, kind, loss, versions, config), (_, defense_kind, _, defense_versions, defense_config) = runs_in(
        plugin_runs
    )
    assert (kind, loss, defense_kind) == ("attack", SOURCE, "defense")
    assert json.loads(config)["params"]["loss_params"] == {"temperature": 2.0}  # read as the declared float
    assert json.loads(versions)[DIST] == "0.1.0" and json.loads(defense_versions)[DIST] == "0.1.0"
    assert json.loads(defense_config)["params"] == {"seed": 3} and json.loads(defense_config)["transform"] == TRANSFORM


def test_report_table1_shows_the_plugin_source_by_name(site: Path, plugin_runs: Path, tmp_path: Path) -> None:
    out = run(_env(site), "--db", str(plugin_runs), "report", "table1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert SOURCE in out.stdout and SOURCE in (tmp_path / "table1.csv").read_text()


def test_the_api_takes_the_plugin_and_its_params(site: Path, advdb_home: Path, tmp_path: Path) -> None:
    code = f"""
import advdb
from advdb.errors import ConfigError
store = advdb.open({str(tmp_path / "api.db")!r})
run = advdb.attack(store=store, loss={SOURCE!r}, params={{"temperature": 3}}, n=2, iterations=2, device="cpu")
print(run.loss, run.config["params"]["loss_params"], run.versions[{DIST!r}])
try:
    advdb.attack(store=store, loss={SOURCE!r}, params={{"temperature": "warm"}}, n=2, iterations=2, device="cpu")
except ConfigError as exc:
    print("refused:", exc)
print(len(store.runs()))
"""
    out = subprocess.run([sys.executable, "-c", code], env=_env(site), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"{SOURCE} {{'temperature': 3.0}} 0.1.0",
        f"refused: parameter 'temperature' of loss '{SOURCE}' must be float, got 'warm'",
        "1",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--param", "temp=2"), f"unknown parameter 'temp' for loss '{SOURCE}': it takes temperature"),
        (("--param", "temperature=hot"), f"parameter 'temperature' of loss '{SOURCE}' must be float, got 'hot'"),
        (("--param", "temperature=nan"), f"parameter 'temperature' of loss '{SOURCE}' must be a finite number"),
        (("--param", "temperature"), "--param takes key=value"),
        (("--param", "temperature=0"), "must be positive, got 0.0"),  # the plugin's own check, before any work
    ],
    ids=["unknown", "type", "nan", "no-equals", "plugin-check"],
)
def test_a_bad_param_is_one_line_and_no_run(site: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = tmp_path / "bad.db"
    out = run(_env(site), "--db", str(db), "attack", "--loss", SOURCE, *args, "-n", "2", "-T", "2", "--device", "cpu")
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert runs_in(db) == []


def test_a_bad_transform_param_is_one_line(site: Path, plugin_runs: Path) -> None:
    before = runs_in(plugin_runs)
    out = run(_env(site), "--db", str(plugin_runs), "defend", "--sources", "1", "-t", TRANSFORM, "--param", "sigma=1")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"advdb: error: unknown parameter 'sigma' for transform '{TRANSFORM}': it takes seed"
    assert runs_in(plugin_runs) == before


def test_a_broken_plugin_is_one_warning_and_advdb_goes_on(site: Path, broken: Path, tmp_path: Path) -> None:
    env = _env(site, broken)
    out = run(env, "list", "losses")
    assert out.returncode == 0 and SOURCE in out.stdout and "│ ce " in out.stdout, out.stderr
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("advdb: warning: plugin ") for w in warnings), warnings
    failed = next(w for w in warnings if "'broken'" in w)
    assert "advdb-broken-plugin 0.3" in failed and "RuntimeError: this plugin is broken" in failed
    clash = next(w for w in warnings if "'ce'" in w)
    assert "is a built-in loss name" in clash
    db = tmp_path / "still.db"
    out = run(env, "--db", str(db), "attack", "--loss", "ce", "-n", "2", "-T", "1", "--device", "cpu")
    assert out.returncode == 0 and out.stderr.count("advdb: warning:") == 2, out.stderr
    assert [r[2] for r in runs_in(db)] == ["ce"]


def test_the_registries_hold_the_paper_names_and_every_builtin() -> None:
    from advdb.attacks import list_attacks, list_sources
    from advdb.transforms import list_transforms

    assert set(vocabulary.SOURCES) <= set(list_sources()) and "dlr" in list_sources()
    assert set(vocabulary.ATTACKS) <= set(list_attacks())
    assert set(vocabulary.TRANSFORMS) <= set(list_transforms())
    from advdb.plugins import distribution_of

    assert distribution_of("loss", "dlr") == ("advdb", advdb.__version__)  # through advdb's own entry point
    assert distribution_of("loss", "ce") is None


def test_kappa_is_m_logits_hyperparameter() -> None:
    from advdb.api import attack_spec

    by_option = attack_spec(loss="m-logit", kappa=2.0).validate()
    by_param = attack_spec(loss="m-logit", params={"kappa": "2"}).validate()
    assert by_option.source.kappa == by_param.source.kappa == 2.0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown parameter 'kappa' for loss 'ce': it takes none"):
        attack_spec(loss="ce", params={"kappa": 1}).validate()
    with pytest.raises(ConfigError, match="kappa must be ≥ 0"):
        attack_spec(loss="m-logit", params={"kappa": -1}).validate()


def _dlr_by_hand(z: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Minus AutoAttack's targeted DLR: (z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12), row by row."""
    out = []
    for row, yi, ti in zip(z.astype(np.float64), y, t, strict=True):
        top = sorted(row, reverse=True)
        out.append((row[yi] - row[ti]) / (top[0] - (top[2] + top[3]) / 2 + 1e-12))
    return np.array(out)


@pytest.mark.parametrize("mode", vocabulary.MODES)
def test_dlr_runs_in_both_modes_with_the_papers_loss(advdb_home: Path, tmp_path: Path, mode: str) -> None:
    import torch

    store = advdb.open(tmp_path / "dlr.db")
    run = advdb.attack(store=store, loss="dlr", mode=mode, n=4, iterations=3, device="cpu", memory_format="contiguous")
    assert run.status == "finished" and run.loss == "dlr" and run.mode == mode
    inputs = store.inputs(run.run_id)
    with torch.no_grad():
        z = advdb.classifier("digits-cnn").module(inputs.images).numpy()
    first = store.trajectory(run.run_id, columns=["image_id", "iteration", "loss", "grad_l2", "step_l2"])
    order = store.sql("SELECT image_id FROM run_images WHERE run_id = ? ORDER BY position", [run.run_id])
    first = first[first.iteration == 0].set_index("image_id").loc[order.image_id]  # in attack order, as the inputs
    np.testing.assert_allclose(
        first.loss.to_numpy(), _dlr_by_hand(z, inputs.labels.numpy(), inputs.targets.numpy()), rtol=1e-4
    )
    assert (first.grad_l2 > 0).all() and (first.step_l2 > 0).all()


def test_dlr_needs_four_classes() -> None:
    import torch

    from advdb.attacks import create_source

    dlr = create_source("dlr")
    z = torch.tensor([[2.0, 1.0, 0.0]])
    with pytest.raises(ConfigError, match="loss 'dlr' needs at least 4 classes, the model has 3"):
        dlr.objective(z, torch.tensor([1]), torch.tensor([0]))


def test_the_apgdt_example_records_and_reads(advdb_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("torchattacks")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "apgdt.py"), str(tmp_path / "apgdt.db"), "--n", "4", "--steps", "4"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "recorded run 2: external (torchattacks APGDT)" in out.stdout
    assert "rows per image: 6" in out.stdout  # x₀, then APGD-T's evaluations of the whole batch, the result
