"""Read-only SQL over the store through DuckDB.

DuckDB runs in memory with the store ATTACHed read-only as ``store``; every store table is
also visible unqualified (``SELECT … FROM trajectory``) through a view. Read-only is
enforced by the engine, not only by reading the statement:

* the store and the columnar copy are attached READ_ONLY;
* file access is off (``enable_external_access = false``: no ``read_text``, ``read_csv``,
  ``glob``, ``COPY … TO``, ``ATTACH``, extension loading) unless the caller asks for it
  (``allow_files``), and the configuration is locked, so no query can turn it back on;
* only SELECT-like statements are accepted, and ``EXPLAIN [ANALYZE]`` only of a query:
  anything that writes (INSERT, UPDATE, DDL, COPY, ATTACH, SET, CALL, PRAGMA …) is refused
  before it runs;
* the scanner functions (``sqlite_scan``, ``sqlite_query``, ``postgres_query``,
  ``postgres_execute`` …) are refused: they reach a database past the read-only attach
  (``postgres_execute('store', 'COMMIT; DELETE …')`` would write, ``sqlite_scan`` reads any
  file); queries read the store through its tables.
"""

from __future__ import annotations

import json
import re

import duckdb
import pyarrow as pa

from advdb.errors import QueryError
from advdb.store.duck import open_duck
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


_SCANNER = re.compile(r"(?i)\b(sqlite|postgres)_\w+")


def _scanner_calls(con: duckdb.DuckDBPyConnection, text: str) -> set[str]:
    """The scanner-extension functions a query calls (from DuckDB's own parse; by name when it cannot serialise one)."""
    found: set[str] = set()
    try:
        tree = json.loads((con.execute("SELECT json_serialize_sql(?)", [text]).fetchone() or ["{}"])[0])
    except (duckdb.Error, TypeError, ValueError):
        tree = {"error": True}
    if tree.get("error"):
        return {m.group(0).lower() for m in _SCANNER.finditer(text)}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            name = node.get("function_name")
            if isinstance(name, str) and _SCANNER.fullmatch(name):
                found.add(name.lower())
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(tree)
    return found


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines[:2]) if lines else type(exc).__name__
    return text if len(text) < 400 else text[:400] + "…"


class QuerySession:
    """A DuckDB connection over the store for read-only queries.

    With ``columnar`` (the default), ``trajectory`` reads the incremental columnar copy
    (:mod:`advdb.analytics.columnar`), checked and refreshed first; ``store.trajectory``
    always reads the store itself. ``allow_files`` lets queries read (and write) files.
    ``notices`` says what the session did on its own (a rebuilt copy).
    """

    def __init__(self, location: StoreLocation, *, columnar: bool | None = None, allow_files: bool = False) -> None:
        from advdb.analytics import columnar as col

        self.location = location
        self.con = open_duck(location, read_only=True)
        self.refresh: col.RefreshStats | None = None
        self.notices: list[str] = []
        use = col.enabled() if columnar is None else columnar
        if use:
            self.refresh = col.open_copy(self.con, location)
            if self.refresh is not None and self.refresh.rebuilt:
                self.notices.append(f"the columnar copy did not match the store ({self.refresh.rebuilt}): rebuilt it")
        self._create_views()
        if not allow_files:
            self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

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
        from advdb.analytics.columnar import SUMS_SELECT

        if self.refresh is not None:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW iteration_sums AS SELECT * FROM {ALIAS}.iteration_sums")
        elif any(t == "trajectory" for _, t in rows):
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW iteration_sums AS {SUMS_SELECT} FROM trajectory GROUP BY run_id, "
                "iteration"
            )

    def tables(self) -> list[str]:
        return [
            r[0]
            for r in self.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'store' ORDER BY 1"
            ).fetchall()
        ]

    def query(self, sql: str, params: list | dict | None = None) -> pa.Table:
        """Run read-only SQL; returns the last statement's result as an Arrow table."""
        stmts = _statement_types(self.con, sql)
        if not stmts:
            raise QueryError("empty query: give a SELECT statement")
        for kind, text in stmts:
            if kind not in READ_ONLY_TYPES:
                raise QueryError(f"advdb sql is read-only: {kind} statements are refused ({text.strip()[:60]!r})")
            calls = _scanner_calls(self.con, _EXPLAIN.sub("", text, count=1))
            if calls:
                raise QueryError(
                    f"scanner functions reach the database past the read-only attach and are refused "
                    f"({', '.join(sorted(calls))}): query the store's tables (runs, samples, trajectory, …)"
                )
        try:
            for _, text in stmts[:-1]:
                self.con.execute(text)
            rel = self.con.execute(stmts[-1][1], params) if params is not None else self.con.execute(stmts[-1][1])
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
