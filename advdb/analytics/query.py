"""Read-only SQL over the store through DuckDB, in a connection with no way out.

A user's SQL (``advdb sql``, the web view's SQL box, :meth:`QuerySession.query`) never runs
where the store is attached. A session keeps two DuckDB connections:

* ``con``, the library's own: the store ATTACHed read-only through DuckDB's sqlite/postgres
  scanner (for PostgreSQL, with its password), the columnar copy attached read-only, every
  store table visible unqualified. advdb's own code reads through it (the web view's
  version check, Parquet export); it never runs a user's SQL.
* ``sandbox``, where user SQL runs: a snapshot of the store's tables, written by ``con``
  into a private DuckDB file when the session opens and opened read-only as ``store``, with
  the columnar copy attached read-only. It is a sealed connection
  (:func:`advdb.store.duck.sealed_connect`): no scanner extension was ever loaded and none
  can be (autoload and autoinstall off, ``LOAD``/``INSTALL`` need external access), file
  access is off unless the caller asks (``allow_files``), Python objects are not scanned,
  and the configuration is locked. So no function that reads another file or database
  exists in it, whatever the form of the call (``query()``, ``query_table()``, a macro, a
  prepared statement, a subquery); every database it has is read-only, so a write fails in
  the engine; and nothing it can return (``duckdb_databases()``, ``duckdb_settings()``,
  error messages) holds the store's password, which it never saw.

``trajectory``, ``store.trajectory`` and the copy's derived tables (``iteration_sums``,
``target_minima``, ``target_counts``) read the columnar copy, which the
session checked against the store and brought up to date when it opened (a view in the
snapshot: the 10⁸ rows of a large store are never copied). With the copy off
(``ADVDB_COLUMNAR=0``), the store's trajectory is copied into the snapshot the first time a
query names it. The statement filter below (only SELECT-like statements,
``EXPLAIN ANALYZE`` only of a query) refuses writes early with a clear message; it is not
what keeps the store safe.
"""

from __future__ import annotations

import contextlib
import copy
import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa

from advdb.errors import QueryError
from advdb.store.duck import open_duck, sealed_connect
from advdb.store.location import StoreLocation

READ_ONLY_TYPES = {"SELECT", "EXPLAIN", "RELATION", "LOGICAL_PLAN"}


_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+|\([^)]*\)\s*)?", re.IGNORECASE)


def _statement_types(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    """(type, text) of each statement; an EXPLAIN takes the type of the statement it explains."""
    try:
        stmts = [(str(s.type).rsplit(".", 1)[-1], s.query) for s in con.extract_statements(sql)]
    except duckdb.Error as exc:
        raise QueryError(_one_line(exc)) from None
    out = []
    for kind, text in stmts:
        if kind == "EXPLAIN":
            inner = _statement_types(con, _EXPLAIN.sub("", text, count=1))
            kind = inner[0][0] if len(inner) == 1 and inner[0][0] != "EXPLAIN" else "EXPLAIN of a non-query"
            kind = "EXPLAIN" if kind in READ_ONLY_TYPES else kind
        out.append((kind, text))
    return out


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines[:2]) if lines else type(exc).__name__
    return text if len(text) < 400 else text[:400] + "…"


# the store's own tables (PostgreSQL's catalogue, information_schema and pg_catalog, stays out of the snapshot)
STORE_TABLES = (
    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'store' "
    "AND schema_name NOT IN ('information_schema', 'pg_catalog') ORDER BY table_name"
)
_SNAPSHOT = "_snapshot"  # the snapshot's alias in ``con`` while it is written
# names the store's own trajectory (the columnar copy on): ``store.trajectory``, ``"store".main."trajectory"``
_STORE_TRAJECTORY = re.compile(r'(?i)\bstore"?\s*\.\s*(?:"?main"?\s*\.\s*)?"?trajectory\b')
_ANY_TRAJECTORY = re.compile(r"(?i)trajectory|iteration_sums|target_minima|target_counts")
_NO_EXTENSION = re.compile(r'with name "?([\w.]+)"? is not in the catalog, but it exists in the (\w+) extension')


def _user_error(exc: BaseException) -> str:
    """A DuckDB error as one line; a function of an extension the sandbox lacks says why it is missing."""
    missing = _NO_EXTENSION.search(str(exc))
    if missing:
        return (
            f"{missing.group(1)} is not available: advdb sql runs without DuckDB extensions, over the store's "
            "tables (runs, samples, trajectory, …)"
        )
    return _one_line(exc)


class QuerySession:
    """A read-only query session over the store (see the module's docstring for its two connections).

    With ``columnar`` (the default), ``trajectory`` reads the incremental columnar copy
    (:mod:`advdb.analytics.columnar`), checked and refreshed first; ``store.trajectory``
    always reads the store itself. ``allow_files`` lets queries read (and write) files;
    ``memory_limit`` (DuckDB's, e.g. ``4GB``) caps the memory of user SQL's connection.
    ``notices`` says what the session did on its own (a rebuilt copy).
    """

    def __init__(
        self,
        location: StoreLocation,
        *,
        columnar: bool | None = None,
        allow_files: bool = False,
        memory_limit: str | None = None,
    ) -> None:
        from advdb.analytics import columnar as col

        self.location = location
        self.allow_files = allow_files
        self.memory_limit = memory_limit
        self.con = open_duck(location, read_only=True)
        self.refresh: col.RefreshStats | None = None
        self.notices: list[str] = []
        self._dir: Path | None = None
        self._owner = True  # False on a cursor(): the snapshot is its session's
        self.sandbox: duckdb.DuckDBPyConnection | None = None
        try:
            use = col.enabled() if columnar is None else columnar
            if use:
                self.refresh = col.open_copy(self.con, location)
                if self.refresh is not None and self.refresh.rebuilt:
                    self.notices.append(
                        f"the columnar copy did not match the store ({self.refresh.rebuilt}): rebuilt it"
                    )
            self._create_views()
            self._dir = Path(tempfile.mkdtemp(prefix="advdb-sql-"))
            self.con.execute(f"SET allowed_directories = ['{_quoted(str(self._dir) + '/')}']")
            if not allow_files:
                self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
            self._store_tables = self.con.execute(STORE_TABLES).fetchall()
            self._direct = False  # the store's trajectory is in the snapshot
            copied = [(s, t) for s, t in self._store_tables if t != "trajectory" or self.refresh is not None]
            self._write_snapshot(copied)
            self._direct = self.refresh is not None and any(t == "trajectory" for _, t in copied)
            self.sandbox = self._open_sandbox()
        except BaseException:
            self.close()
            raise

    @property
    def _snapshot(self) -> Path:
        assert self._dir is not None
        return self._dir / "store.duckdb"  # opened as catalogue ``store``: ``store.runs`` reads the snapshot

    def _write_snapshot(self, tables: list[tuple[str, str]]) -> None:
        """Copy the store's ``tables`` (schema, name) into the snapshot file, in one transaction."""
        from advdb.analytics.columnar import ALIAS

        try:
            self.con.execute(f"ATTACH '{_quoted(str(self._snapshot))}' AS {_SNAPSHOT}")
        except duckdb.Error as exc:
            raise QueryError(f"cannot write the session's snapshot: {_one_line(exc)}") from None
        try:
            self.con.execute("BEGIN")
            for schema, table in tables:
                if table == "trajectory" and self.refresh is not None:
                    # the verified columnar copy holds exactly the store's rows: a view, not a copy of 10⁸ rows
                    self.con.execute(f"CREATE VIEW {_SNAPSHOT}.trajectory AS SELECT * FROM {ALIAS}.trajectory")
                    continue
                self.con.execute(f'CREATE TABLE {_SNAPSHOT}."{table}" AS SELECT * FROM store."{schema}"."{table}"')
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            raise QueryError(f"cannot read the store: {self._masked(_one_line(exc))}") from None
        finally:
            self.con.execute(f"DETACH {_SNAPSHOT}")

    def _masked(self, text: str) -> str:
        password = self.location.url.password
        return text.replace(str(password), "***") if password else text

    def _open_sandbox(self) -> duckdb.DuckDBPyConnection:
        """The sealed connection over the snapshot (and the columnar copy) where user SQL runs."""
        from advdb.analytics.columnar import ALIAS, columnar_path

        attachments = {ALIAS: columnar_path(self.location)} if self.refresh is not None else {}
        try:
            sandbox = sealed_connect(
                self._snapshot, attachments, allow_files=self.allow_files, memory_limit=self.memory_limit
            )
        except duckdb.Error as exc:
            raise QueryError(f"cannot open the query session: {_one_line(exc)}") from None
        if self.refresh is not None:
            sandbox.execute(f"CREATE TEMP VIEW trajectory AS SELECT * FROM {ALIAS}.trajectory")
            _derived_views(sandbox, copied=True)
        elif self._direct:
            _derived_views(sandbox, copied=False, trajectory="store.main.trajectory", samples="store.main.samples")
        return sandbox

    def _needs_store_trajectory(self, sql: str) -> bool:
        if self._direct or not any(t == "trajectory" for _, t in self._store_tables):
            return False
        pattern = _STORE_TRAJECTORY if self.refresh is not None else _ANY_TRAJECTORY
        return pattern.search(sql) is not None

    def _copy_store_trajectory(self) -> None:
        """Add the store's trajectory table to the snapshot (a query names it) and reopen the sandbox."""
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        self._write_snapshot([(s, t) for s, t in self._store_tables if t == "trajectory"])
        self._direct = True
        self.sandbox = self._open_sandbox()

    def _create_views(self) -> None:
        from advdb.analytics.columnar import ALIAS

        rows = self.con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'store'"
        ).fetchall()
        for schema, table in rows:
            source = f'store."{schema}"."{table}"'
            if table == "trajectory" and self.refresh is not None:
                source = f"{ALIAS}.trajectory"
            self.con.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT * FROM {source}')
        if self.refresh is not None or any(t == "trajectory" for _, t in rows):
            _derived_views(self.con, copied=self.refresh is not None)

    def tables(self) -> list[str]:
        return sorted(t for _, t in self._store_tables)

    def query(self, sql: str, params: list | dict | None = None) -> pa.Table:
        """Run read-only SQL in the sandbox; returns the last statement's result as an Arrow table."""
        if self._dir is None:
            raise QueryError("the query session is closed")
        stmts = _statement_types(self.con, sql)
        if not stmts:
            raise QueryError("empty query: give a SELECT statement")
        for kind, text in stmts:
            if kind not in READ_ONLY_TYPES:
                raise QueryError(f"advdb sql is read-only: {kind} statements are refused ({text.strip()[:60]!r})")
        if self._needs_store_trajectory(sql):
            self._copy_store_trajectory()
        elif self.sandbox is None:
            self.sandbox = self._open_sandbox()
        sandbox = self.sandbox
        assert sandbox is not None
        try:
            for _, text in stmts[:-1]:
                sandbox.execute(text)
            last = stmts[-1][1]
            rel = sandbox.execute(last, params) if params is not None else sandbox.execute(last)
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(_user_error(exc)) from None

    def copies_trajectory(self, sql: str) -> bool:
        """Whether ``sql`` makes the session copy the store's trajectory first (only with the columnar copy off)."""
        return self._needs_store_trajectory(sql)

    def cursor(self) -> QuerySession:
        """This session on new cursors of its two connections: a query on it can run in another
        thread beside this session's own, and :meth:`interrupt` stops it. Closing it closes only
        its cursors. (Queries that :meth:`copies_trajectory` belong on the session itself.)"""
        user = self.sandbox if self.sandbox is not None else self._open_sandbox()
        if self.sandbox is None:
            self.sandbox = user
        views = user.execute("SELECT sql FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()
        view = copy.copy(self)
        view.sandbox = user.cursor()
        for (text,) in views:  # temporary views belong to a connection: made again on the cursor
            view.sandbox.execute(str(text))
        view.con = self.con.cursor()
        view._owner = False
        return view

    def interrupt(self) -> None:
        """Stop the query running on this session (from another thread)."""
        for con in (self.sandbox, self.con):
            if con is not None:
                con.interrupt()

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        self.con.close()
        if self._dir is not None and self._owner:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _derived_views(
    con: duckdb.DuckDBPyConnection, *, copied: bool, trajectory: str = "trajectory", samples: str = "samples"
) -> None:
    """``iteration_sums``, ``target_minima`` and ``target_counts``: the columnar copy's tables, or
    (the copy off) the same aggregates computed from ``trajectory`` and ``samples``."""
    from advdb.analytics.columnar import ALIAS, DERIVED_TABLES, SUMS_SELECT, target_counts_select, target_minima_select

    if copied:
        for table in DERIVED_TABLES:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {ALIAS}.{table}")
        return
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW iteration_sums AS {SUMS_SELECT} FROM {trajectory} GROUP BY run_id, iteration"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW target_minima AS {target_minima_select(trajectory, samples)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW target_counts AS {target_counts_select(trajectory, samples)}")


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def checked_location(url: str | None = None) -> StoreLocation:
    """The store's location after checking (or creating) its schema with SQLAlchemy.

    SQLAlchemy's connections are closed before returning: Python's sqlite3 and DuckDB's
    SQLite must never hold the same file open in one process at once.
    """
    from advdb.store import open_store

    with open_store(url) as store:
        return store.location


def run_sql(location: StoreLocation, sql: str, *, allow_files: bool = False) -> pa.Table:
    """Run one read-only query over the store; returns an Arrow table."""
    with QuerySession(location, allow_files=allow_files) as q:
        return q.query(sql)
