"""`advdb sql` cannot change or leak anything: an escape catalogue run on both backends, the sealed connection
tested alone (the statement filter bypassed), no password anywhere user SQL can look, file access only with
--allow-files, and a columnar copy that notices when it was tampered with and rebuilds itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import make_url, select

from advdb.analytics.query import QuerySession, checked_location
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


# Indirect forms: SQL text run by query()/query_table(), a macro, a prepared statement, a subquery, a lateral
# join, a CTE; the scanners by every name; file readers; engine statements. {other} is another SQLite file
# holding SECRET, {csv} a CSV file holding it, {dsn} the store's own PostgreSQL connection string (or a fake).
INDIRECT = [
    "SELECT * FROM query('SELECT * FROM sqlite_scan(''{other}'', ''secret'')')",
    "SELECT * FROM query('SELECT * FROM read_csv(''{csv}'')')",
    "SELECT * FROM query('SELECT * FROM postgres_query(''{dsn}'', ''SELECT 1'')')",
    "SELECT * FROM query_table('{csv}')",
    "SELECT * FROM query_table(['{csv}', 'runs'])",
    "SELECT * FROM '{csv}'",
    "SELECT * FROM '{other}'",
    "CREATE TEMP MACRO m(p) AS TABLE SELECT * FROM sqlite_scan(p, 'secret')",
    "PREPARE p AS SELECT * FROM sqlite_scan('{other}', 'secret')",
    "PREPARE p AS SELECT * FROM read_csv('{csv}')",
    "EXECUTE p",
    "SELECT (SELECT max(v) FROM sqlite_scan('{other}', 'secret')) AS v",
    "SELECT * FROM runs WHERE EXISTS (SELECT * FROM read_csv('{csv}'))",
    "SELECT * FROM (SELECT '{other}' AS f) t, LATERAL (SELECT * FROM sqlite_scan(t.f, 'secret'))",
    "SELECT * FROM (SELECT '{csv}' AS f) t, LATERAL (SELECT * FROM read_csv(t.f))",
    "WITH x AS (SELECT * FROM sqlite_scan('{other}', 'secret')) SELECT * FROM x",
    "SELECT * FROM sqlite_attach('{other}')",
    "SELECT * FROM postgres_scan('{dsn}', 'public', 'runs')",
    "SELECT * FROM postgres_query('{dsn}', 'SELECT 1')",
    "SELECT * FROM postgres_execute('{dsn}', 'DELETE FROM batch_claims')",
    "SELECT * FROM read_parquet('{tmp}/*.parquet')",
    "SELECT * FROM glob('{tmp}/*')",
    "SELECT * FROM read_blob('{other}')",
    "ATTACH '{other}' AS o (TYPE sqlite)",
    "ATTACH '{other}' AS o",
    "COPY runs TO '{tmp}/runs.csv'",
    "INSTALL sqlite",
    "LOAD '{ext}'",
    "LOAD sqlite_scanner",
    "SET threads = 1",
    "SET allowed_directories = ['/']",
    "PRAGMA threads = 1",
]

# Statements the sealed connection must refuse by itself, run on it with the statement filter bypassed.
ENGINE_WRITES = [
    "DELETE FROM runs",
    "UPDATE store.runs SET status = 'x'",
    "DROP TABLE samples",
    "CREATE TABLE t AS SELECT 1",
    "DELETE FROM trajectory",
    "DELETE FROM columnar.trajectory",
    "INSERT INTO columnar.mirrored VALUES (1, 'x', 0, 0)",
    "DROP TABLE columnar.iteration_sums",
]
ENGINE_READS = [
    "SELECT * FROM read_csv('{csv}')",
    "SELECT * FROM read_text('{csv}')",
    "SELECT * FROM '{csv}'",
    "SELECT * FROM glob('{tmp}/*')",
    "SELECT * FROM sqlite_scan('{other}', 'secret')",
    "SELECT * FROM query('SELECT * FROM sqlite_scan(''{other}'', ''secret'')')",
    "SELECT * FROM (SELECT '{other}' AS f) t, LATERAL (SELECT * FROM sqlite_scan(t.f, 'secret'))",
    "SELECT * FROM postgres_query('{dsn}', 'SELECT 1')",
    "CALL postgres_execute('{dsn}', 'DELETE FROM runs')",
    "ATTACH '{other}' AS o (TYPE sqlite)",
    "ATTACH '{tmp}/new.duckdb' AS o",
    "LOAD '{ext}'",
    "INSTALL sqlite",
    "COPY (SELECT 1) TO '{tmp}/escape.csv'",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "SELECT * FROM leak",  # a Python object in the caller's frame
]
SECRET = "TOPSECRET-4c1f"


def dump(url: str) -> dict[str, str]:
    """Every table of the store, its rows hashed."""
    with open_store(url) as store, store.session() as s:
        return {
            t.name: hashlib.sha256(repr(sorted(map(repr, s.execute(select(t)).all()))).encode()).hexdigest()
            for t in Base.metadata.sorted_tables
        }


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def attacked(store_url: str) -> str:
    with open_store(store_url) as store:
        run_attack(store, AttackSpec(params={"loss": "ce", "iterations": 4}, n=16, batch_size=8))
    return store_url


@pytest.fixture
def outside(attacked: str, tmp_path: Path) -> dict[str, str]:
    """What the escapes aim at: another SQLite file and a CSV file (both holding SECRET), the store's DSN."""
    import sqlite3

    from advdb.store.duck import _extension_file, libpq_dsn

    target = tmp_path / "outside"
    target.mkdir()
    con = sqlite3.connect(target / "other.db")
    con.execute("CREATE TABLE secret (v TEXT)")
    con.execute("INSERT INTO secret VALUES (?)", [SECRET])
    con.commit()
    con.close()
    (target / "other.csv").write_text(f"v\n{SECRET}\n")
    url = make_url(attacked)
    dsn = libpq_dsn(url) if url.get_backend_name() == "postgresql" else "host=127.0.0.1 dbname=x"
    ext = _extension_file("sqlite_scanner")
    return {"tmp": str(target), "other": str(target / "other.db"), "csv": str(target / "other.csv"), "dsn": dsn,
            "ext": str(ext)}  # fmt: skip


def _sql(statement: str, where: dict[str, str]) -> str:
    return statement.format(**{k: v.replace("'", "''") for k, v in where.items()})


def test_escape_catalogue_is_refused_and_changes_nothing(attacked: str, outside: dict[str, str], cli) -> None:  # noqa: ANN001
    code, _, err = cli("--db", attacked, "sql", "SELECT count(*) AS n FROM trajectory")  # the copy exists
    assert code == 0, err
    before, before_files = dump(attacked), files(Path(outside["tmp"]))
    db = attacked.removeprefix("sqlite:///") if attacked.startswith("sqlite") else "/nonexistent.db"
    with QuerySession(checked_location(attacked)) as q:
        for statement in [s.format(tmp=outside["tmp"], db=db) for s in ESCAPES] + [_sql(s, outside) for s in INDIRECT]:
            try:
                ran = q.query(statement)
            except QueryError as exc:
                message = str(exc)
            else:
                pytest.fail(f"{statement} ran: {ran.to_pylist()}")
            assert message and "\n" not in message and SECRET not in message, (statement, message)
        assert q.query("SELECT count(*) AS n FROM trajectory").to_pylist() == [{"n": 16 * 5}]
    for statement in (ESCAPES[0], ESCAPES[13], INDIRECT[0], INDIRECT[8], INDIRECT[19], INDIRECT[27]):
        query = _sql(statement, {**outside, "db": db})
        code, out, err = cli("--db", attacked, "sql", query)
        lines = err.strip().splitlines()
        assert code == QueryError.exit_code, (query, code, out, err)
        assert len(lines) == 1 and lines[0].startswith("advdb: error:") and "Traceback" not in err, (query, err)
        assert SECRET not in out + err
    assert dump(attacked) == before
    assert files(Path(outside["tmp"])) == before_files  # no file was written or changed
    code, out, err = cli("--db", attacked, "sql", "SELECT count(*) AS n FROM trajectory", "--format", "csv")
    assert (code, out.split(), err) == (0, ['"n"', str(16 * 5)], "")  # the copy is intact: nothing to rebuild


def test_sealed_connection_holds_without_the_statement_filter(attacked: str, outside: dict[str, str]) -> None:
    """User SQL's connection, called directly: no write, no file, no other database, no way to unlock it."""
    before, before_files = dump(attacked), files(Path(outside["tmp"]))
    leak = pa.table({"v": [SECRET]})  # noqa: F841  (what a Python replacement scan would read)
    with QuerySession(checked_location(attacked)) as q:
        assert q.sandbox is not None
        for statement in ENGINE_WRITES + [_sql(s, outside) for s in ENGINE_READS]:
            with pytest.raises(duckdb.Error) as caught:
                q.sandbox.execute(statement).fetchall()
            assert SECRET not in str(caught.value), statement
        assert q.query("SELECT count(*) AS n FROM trajectory").to_pylist() == [{"n": 16 * 5}]
        assert q.query("SELECT count(*) AS n FROM store.trajectory").to_pylist() == [{"n": 16 * 5}]
        for statement in (
            "DELETE FROM store.trajectory",
            "UPDATE store.trajectory SET l2 = 0",
            "DROP TABLE store.trajectory",
        ):
            # store.trajectory is a view of the read-only columnar copy: no write reaches a row
            with pytest.raises(duckdb.Error, match="read-only|Can only (delete from|update) base table"):
                q.sandbox.execute(statement)
        assert q.con.execute("SELECT count(*) FROM store.trajectory").fetchone() == (16 * 5,)
    with QuerySession(checked_location(attacked), allow_files=True) as q:  # files on: still no Python objects, no write
        assert q.sandbox is not None
        for statement in (
            "SELECT * FROM leak",
            "DELETE FROM runs",
            "INSERT INTO columnar.mirrored VALUES (1, 'x', 0, 0)",
        ):
            with pytest.raises(duckdb.Error):
                q.sandbox.execute(statement).fetchall()
    assert dump(attacked) == before
    assert files(Path(outside["tmp"])) == before_files


def test_no_password_where_user_sql_can_look(attacked: str, cli) -> None:  # noqa: ANN001
    """A PostgreSQL password (the test server trusts, so any password connects) never reaches user SQL."""
    url = make_url(attacked)
    if url.get_backend_name() != "postgresql":
        pytest.skip("only a PostgreSQL store has a password")
    password = "pw-Zq81-never-shown"
    with_password = url.set(password=password).render_as_string(hide_password=False)
    looks = [
        "SELECT * FROM duckdb_databases()",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM pragma_database_list",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_views()",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM duckdb_functions() WHERE function_name ILIKE '%postgres%'",
        "SELECT count(*) AS n FROM store.trajectory",
    ]
    errors = [
        "SELECT * FROM nowhere",
        "SELECT * FROM postgres_query('store', 'SELECT 1')",
        "SELECT * FROM postgres_scan('store', 'public', 'runs')",
        "SELECT * FROM query_table('store.public.runs')",
        "SELECT * FROM store.public.runs",
    ]
    with QuerySession(checked_location(with_password)) as q:
        for statement in looks:
            assert password not in repr(q.query(statement).to_pylist()), statement
        for statement in errors:
            with pytest.raises(QueryError) as caught:
                q.query(statement)
            assert password not in str(caught.value), statement
    code, out, err = cli("--db", with_password, "sql", "SELECT * FROM duckdb_databases()", "--format", "csv")
    assert code == 0 and password not in out + err, err


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
