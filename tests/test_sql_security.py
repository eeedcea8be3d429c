"""`advdb sql` cannot change or leak anything: an escape catalogue run on both backends, file access only
with --allow-files, and a columnar copy that notices when it was tampered with and rebuilds itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from advdb.errors import QueryError
from advdb.runner import AttackSpec, run_attack
from advdb.store import open_store
from advdb.store.models import Base

ESCAPES = [
    # the columnar copy and the store, through EXPLAIN ANALYZE (which runs its statement)
    "EXPLAIN ANALYZE DELETE FROM columnar.trajectory WHERE iteration > 10",
    "EXPLAIN ANALYZE DROP TABLE columnar.iteration_sums",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/escape.csv'",
    "EXPLAIN (ANALYZE) DELETE FROM runs",
    "EXPLAIN ANALYZE INSERT INTO columnar.mirrored VALUES (1, 'x', 0, 0)",
    # plain writes
    "DELETE FROM columnar.trajectory",
    "DROP TABLE columnar.iteration_sums",
    "UPDATE store.runs SET status = 'x'",
    "DELETE FROM runs",
    "CREATE TABLE t AS SELECT 1",
    "CREATE MACRO m() AS 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "SELECT 1; DELETE FROM runs",
    # files
    "COPY (SELECT 1) TO '{tmp}/escape.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "SELECT content FROM read_text('/etc/hostname')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{tmp}/*.parquet')",
    # the engine's own settings and catalogue
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "SELECT 1; SET enable_external_access = true",
    "DETACH store",
    "USE columnar",
    "CHECKPOINT",
    "INSTALL httpfs",
    "LOAD httpfs",
    # past the read-only attach, through the scanners
    "SELECT * FROM postgres_execute('store', 'COMMIT; DELETE FROM batch_claims')",
    "CALL postgres_execute('store', 'COMMIT; DELETE FROM runs')",
    "SELECT * FROM sqlite_query('store', 'DELETE FROM batch_claims RETURNING 1')",
    "SELECT * FROM postgres_query('store', 'SELECT 1')",
    "SELECT * FROM sqlite_scan('{db}', 'runs')",
    "SELECT * FROM \"sqlite_scan\"('{db}', 'runs')",
    "SUMMARIZE SELECT * FROM postgres_scan('host=x', 'public', 'runs')",
]


def dump(url: str) -> dict[str, str]:
    """Every table of the store, its rows hashed."""
    with open_store(url) as store, store.session() as s:
        return {
            t.name: hashlib.sha256(repr(sorted(map(repr, s.execute(select(t)).all()))).encode()).hexdigest()
            for t in Base.metadata.sorted_tables
        }


@pytest.fixture
def attacked(store_url: str) -> str:
    with open_store(store_url) as store:
        run_attack(store, AttackSpec(params={"loss": "ce", "iterations": 4}, n=16, batch_size=8))
    return store_url


def test_escape_catalogue_is_refused_and_changes_nothing(attacked: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = cli("--db", attacked, "sql", "SELECT count(*) AS n FROM trajectory")  # the copy exists
    assert code == 0, err
    before = dump(attacked)
    target = tmp_path / "escapes"
    target.mkdir()
    db = attacked.removeprefix("sqlite:///") if attacked.startswith("sqlite") else "/nonexistent.db"
    for statement in ESCAPES:
        query = statement.format(tmp=target, db=db)
        code, out, err = cli("--db", attacked, "sql", query)
        lines = err.strip().splitlines()
        assert code == QueryError.exit_code, (query, code, out, err)
        assert len(lines) == 1 and lines[0].startswith("advdb: error:") and "Traceback" not in err, (query, err)
    assert dump(attacked) == before
    assert sorted(p.name for p in target.iterdir()) == []  # no file was written
    code, out, err = cli("--db", attacked, "sql", "SELECT count(*) AS n FROM trajectory", "--format", "csv")
    assert (code, out.split(), err) == (0, ['"n"', str(16 * 5)], "")  # the copy is intact: nothing to rebuild


def test_files_only_with_allow_files(attacked: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    mine = tmp_path / "mine.csv"
    mine.write_text("image_id,note\n1,hello\n")
    query = f"SELECT note FROM read_csv('{mine}')"
    code, _, err = cli("--db", attacked, "sql", query)
    assert code == QueryError.exit_code and "disabled" in err
    code, out, err = cli("--db", attacked, "sql", query, "--allow-files", "--format", "csv")
    assert code == 0 and out.split() == ['"note"', '"hello"'], err
    code, _, err = cli("--db", attacked, "sql", "DELETE FROM runs", "--allow-files")
    assert code == QueryError.exit_code  # still read-only


def test_tampered_columnar_copy_is_noticed_and_rebuilt(attacked: str, cli) -> None:  # noqa: ANN001
    from advdb.analytics.columnar import columnar_path

    code, out, _ = cli(
        "--db", attacked, "sql", "SELECT count(*) AS n, sum(z_target) AS z FROM trajectory", "--format", "csv"
    )
    assert code == 0
    truth = out
    with open_store(attacked) as store:
        path = columnar_path(store.location)
    for damage in (
        "DELETE FROM trajectory WHERE iteration > 2",
        "UPDATE trajectory SET z_target = z_target + 1",
        "DROP TABLE iteration_sums",
    ):
        con = duckdb.connect(str(path))
        con.execute(damage)
        con.close()
        code, out, err = cli(
            "--db", attacked, "sql", "SELECT count(*) AS n, sum(z_target) AS z FROM trajectory", "--format", "csv"
        )
        assert code == 0 and out == truth, damage
        assert err.startswith("advdb: notice: the columnar copy did not match the store") and "rebuilt" in err, (
            damage,
            err,
        )
        code, out, err = cli(
            "--db", attacked, "sql", "SELECT count(*) AS n, sum(z_target) AS z FROM trajectory", "--format", "csv"
        )
        assert (code, out, err) == (0, truth, "")  # once rebuilt, quiet again
