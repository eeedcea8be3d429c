"""advdb from Python (advdb.api): open a store, read it, run the commands; and the example notebook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import advdb
from advdb.errors import ConfigError, NotFoundError, QueryError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[advdb.Store, advdb.RunRecord]:
    store = advdb.open(tmp_path_factory.mktemp("api") / "store.db")
    run = advdb.attack(
        store=store, loss="ce-sign", mode="equal-perturbation", n=5, iterations=6, batch_size=3, alpha="1/255",
        device="cpu",
    )  # fmt: skip
    return store, run


def test_import_advdb_is_cheap_and_reading_needs_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys, advdb; assert 'torch' not in sys.modules, 'import advdb'; "
        f"s = advdb.open({str(tmp_path / 'x.db')!r}); s.sql('SELECT 1'); s.runs(); s.trajectory(1); "
        "assert 'torch' not in sys.modules, 'reading'; print(sorted(advdb.__all__)[:3])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_the_front_names(study: tuple[advdb.Store, advdb.RunRecord]) -> None:
    import advdb.transfer  # noqa: F401 - the module of the same name leaves the front's function in place

    assert callable(advdb.transfer) and callable(advdb.record) and advdb.transfer.__module__ == "advdb.api"
    from advdb.transfer import TransferSpec

    assert TransferSpec.__module__ == "advdb.transfer"
    with pytest.raises(AttributeError):
        advdb.nope  # noqa: B018


def test_runs_run_and_samples(study: tuple[advdb.Store, advdb.RunRecord]) -> None:
    store, run = study
    assert run.status == "finished" and run.loss == "ce-sign" and run.iterations == 6 and run.n_images == 5
    assert store.run(run.run_id) == run
    runs = store.runs(kind="attack", loss="ce-sign", model="digits-cnn")
    assert runs[["run_id", "model", "dataset"]].values.tolist() == [[run.run_id, "digits-cnn", "digits"]]
    assert store.runs(loss="ce").empty and store.runs(mode="equal-multiplier").empty
    assert isinstance(store.runs(as_="arrow"), pa.Table)
    samples = store.samples(run.run_id)
    assert len(samples) == 5 and samples.image_id.is_monotonic_increasing
    with pytest.raises(NotFoundError, match="no run 999"):
        store.run(999)
    with pytest.raises(ConfigError, match="unknown loss 'nope'"):
        store.runs(loss="nope")
    with pytest.raises(ConfigError, match="unknown run filter"):
        store.runs(colour="red")
    with pytest.raises(QueryError, match="read-only"):
        store.sql("DELETE FROM runs")


def test_a_handle_sees_what_others_commit(tmp_path: Path) -> None:
    import torch

    store = advdb.open(tmp_path / "live.db")
    assert store.runs().empty and store.samples().empty
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    with advdb.record(model, x, y, (y + 1) % 3, store=store.url, library="mine", attack="none") as rec:
        rec.finish(x)
    assert store.runs().run_id.tolist() == [1] and len(store.trajectory(1)) == 2  # one row per image: the result is x₀


def test_trajectory_is_what_advdb_sql_returns(study: tuple[advdb.Store, advdb.RunRecord], cli, tmp_path: Path) -> None:  # noqa: ANN001
    store, run = study
    out = tmp_path / "t.parquet"
    query = f"SELECT * FROM trajectory WHERE run_id = {run.run_id} ORDER BY image_id, iteration"
    code, _, err = cli("--db", store.url, "sql", query, "--format", "parquet", "--out", str(out))
    assert code == 0, err
    expected = pq.read_table(out)
    table = store.trajectory(run.run_id, as_="arrow")
    assert table.num_rows == 5 * 7 and table.equals(expected)
    pd.testing.assert_frame_equal(store.trajectory([run.run_id]), expected.to_pandas(), check_exact=True)
    some = store.trajectory(
        run.run_id, columns=["image_id", "iteration", "p_target"], images=[int(table["image_id"][0])]
    )
    assert list(some.columns) == ["image_id", "iteration", "p_target"] and len(some) == 7
    assert store.trajectory(run.run_id + 1).empty
    with pytest.raises(ConfigError, match="unknown trajectory column"):
        store.trajectory(run.run_id, columns=["nope"])


CASES = [
    ({"loss": "nope"}, ["--loss", "nope"]),
    ({"mode": "nope"}, ["--mode", "nope"]),
    ({"attack": "nope"}, ["--attack", "nope"]),
    ({"targets": "nope"}, ["--targets", "nope"]),
    ({"precision": "fp8"}, ["--precision", "fp8"]),
    ({"n": 0}, ["--n", "0"]),
    ({"batch_size": 0}, ["--batch-size", "0"]),
    ({"seed": -1}, ["--seed", "-1"]),
    ({"alpha": "1/0"}, ["--alpha", "1/0"]),
    ({"attack": "ifgs", "loss": "ce"}, ["--attack", "ifgs", "--loss", "ce"]),
    ({"iterations": 0}, ["--iterations", "0"]),
]


@pytest.mark.parametrize(("kwargs", "args"), CASES, ids=[" ".join(a) for _, a in CASES])
def test_errors_are_the_commands_own(kwargs: dict, args: list[str], cli, tmp_path: Path) -> None:  # noqa: ANN001
    db = str(tmp_path / "e.db")
    code, _, err = (
        cli("--db", db, "attack", *args, "--n", "2") if "--n" not in args else cli("--db", db, "attack", *args)
    )
    assert code == 2
    message = err.strip().removeprefix("advdb: error: ").removesuffix(" (see `advdb attack --help`)")
    with pytest.raises(ConfigError) as caught:
        advdb.attack(store=db, **{"n": 2, **kwargs})
    assert str(caught.value) == message
    assert advdb.open(db).runs().empty  # nothing started


def test_other_commands_errors(study: tuple[advdb.Store, advdb.RunRecord], cli) -> None:  # noqa: ANN001
    store, run = study
    for fn, args, kwargs in (
        (advdb.defend, ["defend", "--sources", str(run.run_id), "--transform", "nope"], {"transform": "nope"}),
        (advdb.transfer, ["transfer", "--sources", "999"], {}),
        (advdb.retrain, ["retrain", "--sources", str(run.run_id), "--epochs", "0"], {"epochs": 0}),
    ):
        code, _, err = cli("--db", store.url, *args)
        assert code != 0
        sources = 999 if fn is advdb.transfer else run.run_id
        with pytest.raises(advdb.AdvdbError) as caught:
            fn(sources, store=store, **kwargs)
        assert caught.value.exit_code == code and str(caught.value) == err.strip().removeprefix("advdb: error: ")


def test_report_data_and_figure(study: tuple[advdb.Store, advdb.RunRecord]) -> None:
    from matplotlib.figure import Figure

    store, run = study
    out = store.report("fig3")
    assert out.figure is None and out.data["trajectory_means"].num_rows == 7  # iterations 0 … 6
    assert isinstance(store.report("fig3", figure=True).figure, Figure)
    margins = store.report("margins", runs=[run.run_id]).data["margins"].to_pylist()
    assert [(r["run_id"], r["images"]) for r in margins] == [(run.run_id, 5)]
    with pytest.raises(ConfigError, match="unknown report 'nope'"):
        store.report("nope")


def test_the_example_notebook_runs(tmp_path: Path, advdb_home: Path) -> None:
    pytest.importorskip("torchattacks")
    env = {**os.environ, "ADVDB_HOME": str(advdb_home), "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook.py"), str(tmp_path / "ex.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "trajectory.png").stat().st_size > 1000
    assert "identical: True" in out.stdout and "recorded run 3: external (torchattacks BIM)" in out.stdout
