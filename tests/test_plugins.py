"""Plugins through entry points (advdb.plugins): the example plugin installed from examples/ (a source and
a transform) and the test plugins from tests/plugins/ (an attack, a model and a data set), used from the
command line and the API; bad hyperparameters; broken plugins; advdb's own DLR source; APGD-T.

Each ``advdb`` process costs seconds of imports, so the commands that need no fresh process run in one
(tests/plugins/advdb_session.py, the command line's own entry point, streams captured per command):
the module fixture ``session`` runs them all once and each test reads the results it checks.
"""

from __future__ import annotations

import json
import os
import re
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
from advdb.data.digits import Digits
from advdb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "advdb-plugin-example"
TEST_PLUGINS = ROOT / "tests" / "plugins" / "advdb-test-plugins"
SESSION = ROOT / "tests" / "plugins" / "advdb_session.py"
SOURCE, TRANSFORM, DIST = "softmax-target", "gaussian-noise", "advdb-plugin-example"
ATTACK, MODEL, DATASET, TEST_DIST = "rs-pgd", "digits-ridge", "digits-odd", "advdb-test-plugins"

BROKEN_METADATA = "Metadata-Version: 2.1\nName: advdb-broken-plugin\nVersion: 0.3\n"
BROKEN_ENTRY_POINTS = "[advdb.sources]\nbroken = advdb_broken_plugin:Nope\nce = advdb_broken_plugin:Clash\n"

#: ``--param`` mistakes for the example's source and the test attack: the one line each gives (exit 2).
BAD_PARAMS = {
    "loss-unknown": (("--param", "temp=2"), f"unknown parameter 'temp' for loss '{SOURCE}': it takes temperature"),
    "loss-type": (("--param", "temperature=hot"), f"'temperature' of loss '{SOURCE}' must be float, got 'hot'"),
    "loss-nan": (("--param", "temperature=nan"), f"'temperature' of loss '{SOURCE}' must be a finite number"),
    "loss-no-equals": (("--param", "temperature"), "--param takes key=value"),
    "loss-plugin-check": (("--param", "temperature=0"), "must be positive, got 0.0"),  # the plugin's own, before work
    "attack-unknown": (
        ("--attack", ATTACK, "--param", "eps=0.1"),
        f"unknown parameter 'eps' for attack '{ATTACK}': it takes epsilon, alpha, iterations",
    ),
    "attack-type": (
        ("--attack", ATTACK, "--param", "iterations=2.5"),
        f"parameter 'iterations' of attack '{ATTACK}' must be int, got '2.5'",
    ),
    "attack-plugin-check": (
        ("--attack", ATTACK, "--param", "epsilon=0"),
        f"parameter 'epsilon' of attack '{ATTACK}' must be positive, got 0.0",
    ),
}  # fmt: skip

#: Run in the session's process: the example's source and the test plugins through the API.
API_CODE = """
import advdb
from advdb.errors import ConfigError
store = advdb.open({db!r})
run = advdb.attack(store=store, loss={SOURCE!r}, params={{"temperature": 3}}, n=2, iterations=2, device="cpu")
print(run.loss, run.config["params"]["loss_params"], run.versions[{DIST!r}])
try:
    advdb.attack(store=store, loss={SOURCE!r}, params={{"temperature": "warm"}}, n=2, iterations=2, device="cpu")
except ConfigError as exc:
    print("refused:", exc)
for options in (  # each test plugin alone with advdb's own others: its distribution is among the run's versions
    dict(attack={ATTACK!r}, params={{"epsilon": "0.2"}}),
    dict(model={MODEL!r}, dataset="digits"),
    dict(dataset={DATASET!r}),
):
    run = advdb.attack(store=store, n=2, iterations=1, device="cpu", save_images=False, **options)
    print(run.attack, run.config["params"], run.versions.get({TEST_DIST!r}))
print(len(store.runs()))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin and the test plugins installed into a folder of their own (the venv is left
    alone), by one pip."""
    tmp = tmp_path_factory.mktemp("plugin")
    sources = []
    for package in (EXAMPLE, TEST_PLUGINS):
        sources.append(tmp / package.name)
        shutil.copytree(package, sources[-1], ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*cmd, "--target", str(tmp / "site"), *map(str, sources)], check=True, capture_output=True, timeout=300
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


Result = dict[str, Any]  # a step's "code", "stdout" and "stderr"


def run_session(env: dict[str, str], folder: Path, steps: list[dict[str, Any]]) -> dict[str, Result]:
    """``steps`` (``{"key", "argv"}`` of advdb, or ``{"key", "python"}``) run in one fresh process with ``env``."""
    (folder / "steps.json").write_text(json.dumps(steps))
    out = subprocess.run(
        [sys.executable, str(SESSION), str(folder / "steps.json"), str(folder / "results.json")],
        env=env, cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results: dict[str, Result] = json.loads((folder / "results.json").read_text())
    return results


def runs_in(db: Path) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute("SELECT run_id, kind, loss, versions, config FROM runs ORDER BY run_id").fetchall()


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def session(site: Path, advdb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result]]:
    """Every command of the plugin tests that needs no fresh process, run once in one: in ``store.db`` an
    attack run of the example's source (run 1) and a defense run of its transform (run 2); in ``pgd.db``
    a run of the test attack on the test model and data set; the listings, the reports, the bad params."""
    tmp = tmp_path_factory.mktemp("plugin-session")
    db, pgd = str(tmp / "store.db"), str(tmp / "pgd.db")
    cpu = ("--device", "cpu")
    steps: list[dict[str, Any]] = [
        {"key": f"list-{what}", "argv": ["list", what]}
        for what in ("losses", "transforms", "attacks", "models", "datasets")
    ]
    steps += [
        {"key": "attack-help", "argv": ["attack", "--help"]},
        {"key": "defend-help", "argv": ["defend", "--help"]},
        {"key": "attack", "argv": [
            "--db", db, "attack", "--loss", SOURCE, "--param", "temperature=2", "--mode", "equal-perturbation",
            "--tau", "1", "-n", "4", "-T", "8", *cpu]},
        {"key": "defend", "argv": [
            "--db", db, "defend", "--sources", "1", "--transform", TRANSFORM, "--param", "seed=3",
            "--strength", "0,0.1", *cpu, "--json"]},
        {"key": "table1", "argv": ["--db", db, "report", "table1", "--out", str(tmp / "table1")]},
        {"key": "bad-transform", "argv": [
            "--db", db, "defend", "--sources", "1", "-t", TRANSFORM, "--param", "sigma=1"]},
        {"key": "pgd", "argv": [
            "--db", pgd, "attack", "--attack", ATTACK, "--param", "alpha=0.1", "--model", MODEL,
            "--dataset", DATASET, "-n", "4", "-T", "3", *cpu, "--json"]},
        {"key": "model-alone", "argv": [
            "--db", str(tmp / "model.db"), "attack", "--loss", "ce", "--model", MODEL, "-n", "2", "-T", "1", *cpu]},
        {"key": "robustness", "argv": [
            "--db", pgd, "report", "robustness", "--runs", "1", "--out", str(tmp / "robustness")]},
        {"key": "runs-show", "argv": ["--db", pgd, "runs", "show", "1"]},
        {"key": "pgd-defend", "argv": [
            "--db", pgd, "defend", "--sources", "1", "-t", "bit-depth", "--strength", "0,4", *cpu, "--json"]},
        {"key": "api", "python": API_CODE.format(db=str(tmp / "api.db"), **globals())},
    ]  # fmt: skip
    for key, (args, _) in BAD_PARAMS.items():
        loss = () if "--attack" in args else ("--loss", SOURCE)
        argv = ["--db", str(tmp / f"{key}.db"), "attack", *loss, *args, "-n", "2", "-T", "2", *cpu]
        steps.append({"key": key, "argv": argv})
    return tmp, run_session(_env(site), tmp, steps)


def ok(result: Result) -> Result:
    assert result["code"] == 0, result["stderr"][-3000:]
    return result


def test_the_plugins_are_listed_and_offered_without_importing_them(
    site: Path, session: tuple[Path, dict[str, Result]]
) -> None:
    _, out = session
    for what, names in {
        "losses": (SOURCE, "dlr"),
        "transforms": (TRANSFORM,),
        "attacks": (ATTACK, "ifgs"),
        "models": (MODEL, "digits-cnn"),
        "datasets": (DATASET, "digits"),
    }.items():
        listed = ok(out[f"list-{what}"])
        assert all(f"│ {name} " in listed["stdout"] for name in names) and not listed["stderr"], (what, listed)
    assert "random start" in ok(out["list-attacks"])["stdout"]  # its one-line description, from its docstring
    attack_help = re.sub(r"-\s+", "-", ok(out["attack-help"])["stdout"])  # help text wraps at hyphens too
    assert all(name in attack_help for name in (SOURCE, ATTACK, MODEL, DATASET)), attack_help
    assert TRANSFORM in ok(out["defend-help"])["stdout"]
    code = (
        "import sys, advdb.cli.app; from advdb.cli.options import AttackName, Loss; "
        "print([m.value for m in Loss], [m.value for m in AttackName]); "
        "assert not {'advdb_plugin_example', 'advdb_test_plugins', 'torch'} & set(sys.modules)"
    )
    out2 = subprocess.run([sys.executable, "-c", code], env=_env(site), capture_output=True, text=True, timeout=120)
    assert out2.returncode == 0 and SOURCE in out2.stdout and ATTACK in out2.stdout, out2.stderr


def test_the_plugin_source_and_transform_run_and_are_stored(session: tuple[Path, dict[str, Result]]) -> None:
    tmp, out = session
    ok(out["attack"])
    assert json.loads(ok(out["defend"])["stdout"])["results"], out["defend"]["stdout"]
    (attack_id, kind, loss, versions, config), (_, defense_kind, _, defense_versions, defense_config) = runs_in(
        tmp / "store.db"
    )
    assert (kind, loss, defense_kind) == ("attack", SOURCE, "defense")
    assert json.loads(config)["params"]["loss_params"] == {"temperature": 2.0}  # read as the declared float
    assert json.loads(versions)[DIST] == "0.1.0" and json.loads(defense_versions)[DIST] == "0.1.0"
    assert json.loads(defense_config)["params"] == {"seed": 3} and json.loads(defense_config)["transform"] == TRANSFORM


def test_report_table1_shows_the_plugin_source_by_name(session: tuple[Path, dict[str, Result]]) -> None:
    tmp, out = session
    assert SOURCE in ok(out["table1"])["stdout"] and SOURCE in (tmp / "table1" / "table1.csv").read_text()


def test_the_plugin_attack_model_and_dataset_run_and_are_stored(session: tuple[Path, dict[str, Result]]) -> None:
    """The test attack on the test model and data set: its rows, its plugins' distribution among the run's
    versions, the catalogue's model and data set, and the hyperparameter given as --param."""
    tmp, out = session
    db = tmp / "pgd.db"
    summary = json.loads(ok(out["pgd"])["stdout"])
    assert summary["run_id"] == 1, summary
    ((attack, loss, mode, iterations, config, versions, model, accuracy, dataset, n_images),) = query(
        db,
        "SELECT r.attack, r.loss, r.mode, r.iterations, r.config, r.versions, c.name, c.test_accuracy, d.name, "
        "d.n_images FROM runs r JOIN classifiers c USING (classifier_id) JOIN datasets d USING (dataset_id) "
        "WHERE r.kind = 'attack'",
    )
    assert (attack, loss, mode, iterations, model, dataset) == (ATTACK, "ce", None, 3, MODEL, DATASET)
    assert accuracy > 0.9  # the ridge classifier is a real one (93 % of the held-out digits)
    hyper = json.loads(config)["resolved"]["attack"]
    assert hyper == {"epsilon": 0.3, "alpha": 0.1, "iterations": 3}, hyper  # --param alpha=0.1, as a float
    assert json.loads(versions)[TEST_DIST] == "0.2.0"
    labels = [label for (label,) in query(db, "SELECT label FROM run_images")]
    assert len(labels) == 4 and all(label % 2 == 1 for label in labels)  # the odd digits only
    assert n_images == int((Digits("test").labels % 2).sum())
    rows = query(db, "SELECT image_id, COUNT(*), MIN(linf), MAX(linf) FROM trajectory GROUP BY image_id")
    assert len(rows) == 4 and all(count == 4 for _, count, _, _ in rows), rows  # x₀ and 3 PGD steps, each
    assert all(0 < lo and hi <= 0.3 + 1e-6 for _, _, lo, hi in rows), rows  # a random start inside the ε-ball
    defended = json.loads(ok(out["pgd-defend"])["stdout"])  # genuine images reloaded through the plugin
    assert query(db, f"SELECT count(*) FROM defense_results WHERE run_id = {defended['run_id']}") == [(8,)]
    ok(out["model-alone"])  # the plugin model without --dataset attacks the data set its factory declares
    assert query(tmp / "model.db", "SELECT d.name FROM runs JOIN datasets d USING (dataset_id)") == [("digits",)]


def test_reports_show_the_plugin_attack_by_its_name(session: tuple[Path, dict[str, Result]]) -> None:
    tmp, out = session
    assert f"{ATTACK} (run 1)" in ok(out["robustness"])["stdout"]
    assert ATTACK in "".join(p.read_text() for p in (tmp / "robustness").glob("*.csv"))
    shown = ok(out["runs-show"])["stdout"]
    assert re.search(rf"│ attack +│ {ATTACK} +│", shown) and f'"{TEST_DIST}": "0.2.0"' in shown, shown


def test_the_api_takes_the_plugins_and_their_params(session: tuple[Path, dict[str, Result]]) -> None:
    assert ok(session[1]["api"])["stdout"].splitlines() == [
        f"{SOURCE} {{'temperature': 3.0}} 0.1.0",
        f"refused: parameter 'temperature' of loss '{SOURCE}' must be float, got 'warm'",
        f"{ATTACK} {{'iterations': 1, 'epsilon': 0.2}} 0.2.0",  # "0.2" read as the declared float
        "unified {'iterations': 1, 'loss': 'ce-sign'} 0.2.0",
        "unified {'iterations': 1, 'loss': 'ce-sign'} 0.2.0",
        "4",
    ]


@pytest.mark.parametrize("key", list(BAD_PARAMS))
def test_a_bad_param_is_one_line_and_no_run(session: tuple[Path, dict[str, Result]], key: str) -> None:
    tmp, out = session
    result, message = out[key], BAD_PARAMS[key][1]
    assert result["code"] == 2 and message in result["stderr"], result
    assert len(result["stderr"].strip().splitlines()) == 1 and "Traceback" not in result["stderr"]
    assert runs_in(tmp / f"{key}.db") == []


def test_a_bad_transform_param_is_one_line(session: tuple[Path, dict[str, Result]]) -> None:
    tmp, out = session
    result = out["bad-transform"]
    assert result["code"] == 2, result
    assert (
        result["stderr"].strip()
        == f"advdb: error: unknown parameter 'sigma' for transform '{TRANSFORM}': it takes seed"
    )
    assert [r[1] for r in runs_in(tmp / "store.db")] == ["attack", "defense"]  # the two runs before it, no third


def test_a_broken_plugin_is_one_warning_and_advdb_goes_on(site: Path, broken: Path, tmp_path: Path) -> None:
    db = tmp_path / "still.db"
    steps = [
        {"key": "list", "argv": ["list", "losses"]},
        {"key": "attack", "argv": ["--db", str(db), "attack", "--loss", "ce", "-n", "2", "-T", "1", "--device", "cpu"]},
    ]
    out = run_session(_env(site, broken), tmp_path, steps)
    listed = ok(out["list"])
    assert SOURCE in listed["stdout"] and "│ ce " in listed["stdout"], listed
    warnings = listed["stderr"].strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("advdb: warning: plugin ") for w in warnings), warnings
    failed = next(w for w in warnings if "'broken'" in w)
    assert "advdb-broken-plugin 0.3" in failed and "RuntimeError: this plugin is broken" in failed
    clash = next(w for w in warnings if "'ce'" in w)
    assert "is a built-in loss name" in clash
    assert ok(out["attack"])["stderr"].count("advdb: warning:") == 2, out["attack"]["stderr"]
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
