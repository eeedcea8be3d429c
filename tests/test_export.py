"""`advdb export --format parquet`: the store's tables as Parquet, the trajectory partitioned by
run, read back by tools that do not know advdb (pyarrow's datasets, a fresh DuckDB)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from advdb.analytics import run_sql
from advdb.analytics.query import checked_location
from conftest import small_attack as attack


def test_export_reads_back_everywhere(tmp_path: Path, cli) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'store.db'}"
    a, b = attack(url, "ce"), attack(url, "logit")
    out = tmp_path / "export"
    code, stdout, stderr = cli("--db", url, "export", "--format", "parquet", "--out", str(out))
    assert code == 0, stderr
    assert "wrote" in stdout
    loc = checked_location(url)
    rows = run_sql(loc, "SELECT run_id, count(*) AS n FROM trajectory GROUP BY 1 ORDER BY 1").to_pylist()
    assert sorted(p.name for p in (out / "trajectory").iterdir()) == [f"run_id={a}", f"run_id={b}"]

    ds = pads.dataset(out / "trajectory", format="parquet", partitioning="hive")
    table = ds.to_table()
    assert table.num_rows == sum(r["n"] for r in rows)
    by_run = duckdb.sql(
        f"SELECT run_id, count(*) AS n FROM read_parquet('{out}/trajectory/**/*.parquet', hive_partitioning = true) "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert by_run == [(r["run_id"], r["n"]) for r in rows]
    assert pq.read_table(out / "runs.parquet").num_rows == 2
    samples = run_sql(loc, "SELECT count(*) AS n FROM samples").to_pylist()[0]["n"]
    assert pq.read_table(out / "samples.parquet").num_rows == samples
    # value by value, duplicates included: nothing in the store missing from the export, nothing extra
    exported = {
        "trajectory": f"read_parquet('{out}/trajectory/**/*.parquet', hive_partitioning = true)",
        "samples": f"read_parquet('{out}/samples.parquet')",
        "artifacts": f"read_parquet('{out}/artifacts.parquet')",
    }
    for name, parquet in exported.items():
        stored = run_sql(loc, f"SELECT * FROM {name}")
        cols = ", ".join(f'"{c}"' for c in stored.column_names)
        con = duckdb.connect()
        con.register("stored", stored)
        for left, right in (("stored", parquet), (parquet, "stored")):
            extra = con.sql(f"SELECT {cols} FROM {left} EXCEPT ALL SELECT {cols} FROM {right}").fetchall()
            assert extra == [], (name, left, extra[:3])
        assert con.sql("SELECT count(*) FROM stored").fetchone()[0] > 0

    one = tmp_path / "one"
    code, _, stderr = cli("--db", url, "export", "--out", str(one), "--runs", str(b))
    assert code == 0, stderr
    assert [p.name for p in (one / "trajectory").iterdir()] == [f"run_id={b}"]
    assert pq.read_table(one / "runs.parquet").column("run_id").to_pylist() == [b]


def test_export_refuses_bad_input(tmp_path: Path, cli) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'store.db'}"
    attack(url, "ce")
    code, _, stderr = cli("--db", url, "export", "--out", str(tmp_path / "x"), "--runs", "99")
    assert code != 0 and "no run 99" in stderr and not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("")
    code, _, stderr = cli("--db", url, "export", "--out", str(tmp_path / "file"))
    assert code != 0 and "is a file" in stderr
    code, _, stderr = cli("--db", url, "export", "--out", str(tmp_path / "no" / "such"))
    assert code != 0 and "does not exist" in stderr


def test_every_table_of_runs_exports_by_run() -> None:
    from advdb.analytics.export import RUN_COLUMN
    from advdb.store.models import Base

    with_runs = {t.name for t in Base.metadata.sorted_tables if "run_id" in t.columns}
    assert with_runs == set(RUN_COLUMN)
