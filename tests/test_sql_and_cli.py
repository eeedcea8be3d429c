"""`advdb sql`, `advdb runs …`, `advdb db …` through the real CLI, on both backends."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from advdb.errors import ConfigError, NotFoundError, QueryError, StoreError
from advdb.store import open_store
from advdb.store.runs import create_run


@pytest.fixture
def store_with_runs(store_url: str) -> str:
    with open_store(store_url) as store:
        create_run(store, kind="attack", config={"x": 1}, loss="ce", mode="equal-multiplier", seed=3)
        create_run(store, kind="attack", config={"x": 2}, loss="logit", mode="equal-perturbation", seed=4)
    return store_url


def test_select_on_a_fresh_store(store_url: str, cli) -> None:  # noqa: ANN001
    code, out, err = cli("--db", store_url, "sql", "select 42 as answer", "--format", "json")
    assert code == 0, err
    assert json.loads(out) == [{"answer": 42}]


def test_sql_sees_store_tables_unqualified_and_qualified(store_with_runs: str, cli) -> None:  # noqa: ANN001
    code, out, _ = cli("--db", store_with_runs, "sql", "select loss, seed from runs order by run_id", "-f", "csv")
    assert code == 0
    assert out.splitlines() == ['"loss","seed"', '"ce",3', '"logit",4']
    code, out, _ = cli("--db", store_with_runs, "sql", "select count(*) as n from store.runs", "-f", "json")
    assert json.loads(out) == [{"n": 2}]


def test_sql_parquet_needs_out_and_writes_it(store_with_runs: str, cli, tmp_path) -> None:  # noqa: ANN001
    code, _, err = cli("--db", store_with_runs, "sql", "select * from runs", "-f", "parquet")
    assert code == ConfigError.exit_code and "--out" in err
    out = tmp_path / "runs.parquet"
    code, _, _ = cli(
        "--db", store_with_runs, "sql", "select run_id, loss from runs", "-f", "parquet", "--out", str(out)
    )
    assert code == 0 and pq.read_table(out).num_rows == 2


@pytest.mark.parametrize(
    "statement",
    [
        "insert into runs (run_id, kind, status) values (9, 'attack', 'running')",
        "delete from runs",
        "update runs set status = 'failed'",
        "drop table trajectory",
        "create table x as select 1",
        "select 1; delete from runs",
        "copy runs to '/tmp/advdb-copy.csv'",
        "attach ':memory:' as other",
        "set threads = 1",
    ],
)
def test_sql_refuses_writes_and_keeps_the_store(store_with_runs: str, cli, statement: str) -> None:  # noqa: ANN001
    code, out, err = cli("--db", store_with_runs, "sql", statement)
    assert code == QueryError.exit_code
    assert "read-only" in err and "Traceback" not in err and out == ""
    code, out, _ = cli(
        "--db", store_with_runs, "sql", "select count(*) as n from runs where status = 'running'", "-f", "json"
    )
    assert json.loads(out) == [{"n": 2}]


def test_sql_syntax_error_is_one_line(store_url: str, cli) -> None:  # noqa: ANN001
    code, _, err = cli("--db", store_url, "sql", "selec 1 frm runs")
    assert code == QueryError.exit_code
    assert err.strip().startswith("advdb: error:") and "syntax error" in err and len(err.strip().splitlines()) == 1


def test_runs_list_show_delete(store_with_runs: str, cli) -> None:  # noqa: ANN001
    code, out, _ = cli("--db", store_with_runs, "runs", "list", "--json")
    runs = json.loads(out)
    assert code == 0 and [r["loss"] for r in runs] == ["logit", "ce"]
    code, out, _ = cli("--db", store_with_runs, "runs", "show", str(runs[0]["run_id"]), "--json")
    assert code == 0 and json.loads(out)["config"] == {"x": 2}
    code, _, err = cli("--db", store_with_runs, "runs", "show", "999")
    assert code == NotFoundError.exit_code and "no run 999" in err
    code, _, err = cli("--db", store_with_runs, "runs", "delete", str(runs[0]["run_id"]))
    assert code == ConfigError.exit_code and "--yes" in err  # no terminal to ask on
    code, _, _ = cli("--db", store_with_runs, "runs", "delete", str(runs[0]["run_id"]), "--yes")
    assert code == 0
    code, out, _ = cli("--db", store_with_runs, "runs", "list", "--json")
    assert [r["loss"] for r in json.loads(out)] == ["ce"]


def test_unreachable_postgres_is_one_line_with_the_password_masked(cli) -> None:  # noqa: ANN001
    code, out, err = cli("--db", "postgresql://alice:s3cret@127.0.0.1:1/nowhere", "runs", "list")
    assert code == StoreError.exit_code
    assert "s3cret" not in err + out and "***" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://", "nonsense://x"])
def test_unsupported_urls_are_clear(cli, url: str) -> None:  # noqa: ANN001
    code, _, err = cli("--db", url, "runs", "list")
    assert code in (ConfigError.exit_code, StoreError.exit_code)
    assert err.startswith("advdb: error:") and "Traceback" not in err


def test_sqlite_in_a_missing_folder(cli, tmp_path) -> None:  # noqa: ANN001
    code, _, err = cli("--db", f"sqlite:///{tmp_path}/no/such/dir/x.db", "runs", "list")
    assert code == StoreError.exit_code and "does not exist" in err


def test_default_store_is_a_file_in_the_working_directory(cli, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and (tmp_path / "advdb.db").exists()
    code, out, _ = cli("db", "current", "--json")
    assert json.loads(out)["up_to_date"] is True


def test_version(cli) -> None:  # noqa: ANN001
    from advdb import __version__

    code, out, _ = cli("--version")
    assert code == 0 and __version__ in out
