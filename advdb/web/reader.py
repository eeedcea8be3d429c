"""The web view's access to the store: one read-only query session, reopened when the store
changes or its database was lost, and the SQL box's queries, each on its own cursor with a
time limit, a row limit inside the query and a memory limit on the whole session.

Pages read through the session's own connection, one query at a time. A SQL-box query runs
on a cursor of the same DuckDB database (the store and the columnar copy attached once), so
a slow one never holds the pages up; a timer interrupts it (``DuckDBPyConnection.interrupt``)
when it runs past its limit, and :meth:`StoreReader.interrupt` stops every running query
when the server shuts down.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from advdb.analytics.query import QuerySession
from advdb.analytics.sqlfiles import sql_text
from advdb.errors import ConfigError, QueryError, StoreError
from advdb.store.location import StoreLocation

VERSION_SQL = (
    "SELECT (SELECT count(*) FROM store.batches), (SELECT count(*) FROM store.runs), "
    "(SELECT max(coalesce(updated_at, created_at)) FROM store.runs)"
)
DEFAULT_MEMORY_LIMIT = "4GB"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def check_memory_limit(value: str) -> str:
    """A DuckDB ``memory_limit`` such as ``4GB`` or ``512MiB``; a ConfigError otherwise."""
    if not _MEMORY.match(value):
        raise ConfigError(f"--memory-limit must be a size such as 4GB or 512MiB, got {value!r}")
    return value.strip()


def _open_session(location: StoreLocation, memory_limit: str | None) -> QuerySession:
    """A read-only session, with DuckDB's memory limit on user SQL."""
    return QuerySession(location, memory_limit=memory_limit)


class _Cursor:
    """A SQL-box query's own cursor on the open session (the same snapshot, store and copy)."""

    def __init__(self, session: QuerySession) -> None:
        self.view = session.cursor()
        self.parse = self.view.con

    def query(self, text: str) -> pa.Table:
        return self.view.query(text)

    def interrupt(self) -> None:
        self.view.interrupt()

    def close(self) -> None:
        self.view.close()


class _Timer(threading.Timer):
    """Calls ``stop`` after ``seconds`` unless cancelled first; ``fired`` says whether it did."""

    def __init__(self, seconds: float, stop: Callable[[], None]) -> None:
        self.fired = threading.Event()

        def fire() -> None:
            self.fired.set()
            stop()

        super().__init__(seconds, fire)
        self.daemon = True


@dataclass
class _Open:
    """The open session, the version of the store it was opened at, and the SQL box's cursors on it."""

    session: QuerySession
    version: str
    idle: list[_Cursor] = field(default_factory=list)
    busy: set[_Cursor] = field(default_factory=set)

    def close(self) -> None:
        for c in [*self.idle, *self.busy]:
            c.close()
        self.session.close()


@dataclass(frozen=True)
class SqlResult:
    """At most ``limit`` rows of a SQL-box query, and whether it had more."""

    table: pa.Table
    more: bool


def wrap_limit(con: duckdb.DuckDBPyConnection, text: str, limit: int) -> str:
    """``text`` with its last statement read through ``LIMIT limit`` when it is a query, so
    DuckDB stops once it has them; statements of other kinds are left for the checks to refuse."""
    try:
        stmts = con.extract_statements(text)
    except duckdb.Error:
        return text  # the session reports the syntax error
    if not stmts or str(stmts[-1].type).rsplit(".", 1)[-1] != "SELECT":
        return text
    *head, last = stmts
    body = last.query.strip().rstrip(";").rstrip()
    if not body:
        return text
    wrapped = f"SELECT * FROM (\n{body}\n) AS advdb_result LIMIT {int(limit)}"
    return ";\n".join([*(s.query.strip().rstrip(";") for s in head), wrapped])


class StoreReader:
    """Read-only queries for the pages, one at a time (a DuckDB connection serves one thread),
    and SQL-box queries, each on its own cursor with a time limit.

    The session is reopened when the store has changed (a batch committed, a run created or
    updated), so the columnar copy catches up and pages show what the store holds now — once
    no SQL-box query runs on it: two sessions never hold the copy at once. A session whose
    database went away (a PostgreSQL restart) is reopened and the query tried again, once.
    """

    def __init__(
        self, location: StoreLocation, *, query_timeout: float = 10.0, memory_limit: str | None = DEFAULT_MEMORY_LIMIT
    ) -> None:
        self.location = location
        self.query_timeout = query_timeout
        self.memory_limit = memory_limit
        self._lock = threading.Lock()  # the session's own connection: one page query at a time
        self._state = threading.Lock()  # _open, its cursors, _closing
        self._open: _Open | None = None
        self._closing = False

    def version(self) -> str:
        """A token that changes whenever the store does (what pages poll to refresh)."""
        with self._lock:
            return self._current()[1]

    def query(self, name: str, **params: Any) -> pa.Table:
        """Run the report query ``name`` (``advdb/analytics/sql/name.sql``)."""
        return self.sql(sql_text(name), params or None)

    def sql(self, text: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run read-only SQL on the pages' connection; a write or a file access is a QueryError."""
        with self._lock:
            session = self._current()[0].session
            try:
                return session.query(text, params)
            except QueryError:
                if self._closing or self._alive(session):
                    raise
            return self._current()[0].session.query(text, params)  # the database came back: once more

    def session(self) -> QuerySession:
        """The up-to-date session; the caller holds :attr:`lock` while using it."""
        return self._current()[0].session

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def sql_box(self, text: str, *, limit: int) -> SqlResult:
        """A SQL-box query on its own cursor: at most ``limit`` rows, stopped after :attr:`query_timeout` s."""
        with self._lock:
            opened = self._current()[0]
            if opened.session.copies_trajectory(text):
                return self._on_session(opened, text, limit)  # the session copies the table first: not on a cursor
            with self._state:
                cursor = opened.idle.pop() if opened.idle else None
            cursor = cursor or _Cursor(opened.session)
            with self._state:
                opened.busy.add(cursor)
        timer = _Timer(self.query_timeout, cursor.interrupt)
        try:
            table = self._timed(timer, lambda: cursor.query(wrap_limit(cursor.parse, text, limit + 1)))
        finally:
            self._release(opened, cursor, reuse=not timer.fired.is_set())
        return SqlResult(table.slice(0, limit), table.num_rows > limit)

    def _on_session(self, opened: _Open, text: str, limit: int) -> SqlResult:
        """A query run on the session itself (the caller holds :attr:`lock`); its old cursors are dropped."""
        timer = _Timer(self.query_timeout, opened.session.interrupt)
        table = self._timed(timer, lambda: opened.session.query(wrap_limit(opened.session.con, text, limit + 1)))
        with self._state:
            idle, opened.idle = opened.idle, []
        for cursor in idle:
            cursor.close()
        return SqlResult(table.slice(0, limit), table.num_rows > limit)

    def _timed(self, timer: _Timer, run: Callable[[], pa.Table]) -> pa.Table:
        timer.start()
        try:
            return run()
        except QueryError:
            if timer.fired.is_set():
                raise QueryError(
                    f"the query ran past the {self.query_timeout:g} s limit and was stopped "
                    "(advdb ui --query-timeout; advdb sql has no limit)"
                ) from None
            if self._closing:
                raise StoreError("the web view is stopping: the query was interrupted") from None
            raise
        finally:
            timer.cancel()

    def _release(self, opened: _Open, cursor: _Cursor, *, reuse: bool) -> None:
        with self._state:
            opened.busy.discard(cursor)
            if reuse and opened is self._open and not self._closing:
                opened.idle.append(cursor)
                return
        cursor.close()  # a cursor of a replaced session, or one a timer may still interrupt

    def interrupt(self) -> None:
        """Stop every running query now, and refuse new ones (the server is shutting down)."""
        with self._state:
            self._closing = True
            opened = self._open
            busy = list(opened.busy) if opened else []
        for cursor in busy:
            cursor.interrupt()
        if opened is not None:
            opened.session.interrupt()

    def _current(self) -> tuple[_Open, str]:
        """The open session and the store's version (the caller holds :attr:`lock`)."""
        if self._closing:
            raise StoreError("the web view is stopping")
        if self._open is None:
            self._open = self._new_open()
        try:
            version = _read_version(self._open.session)
        except StoreError:
            self._replace()  # the database went away (a restart): open it again, once
            version = _read_version(self._open.session)
        if version != self._open.version:
            with self._state:
                idle = not self._open.busy
            if idle:
                self._replace()
        return self._open, version

    def _new_open(self) -> _Open:
        session = _open_session(self.location, self.memory_limit)
        return _Open(session, _read_version(session))

    def _replace(self) -> None:
        with self._state:
            old, self._open = self._open, None
        if old is not None:
            old.close()  # running SQL-box queries on it fail: their database is gone or replaced
        self._open = self._new_open()

    def _alive(self, session: QuerySession) -> bool:
        try:
            _read_version(session)
        except StoreError:
            return False
        return True

    def close(self) -> None:
        self.interrupt()
        with self._lock, self._state:
            if self._open is not None:
                self._open.close()
                self._open = None


def _read_version(session: QuerySession) -> str:
    try:
        row = session.con.execute(VERSION_SQL).fetchone() or (0, 0, None)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = session.location.url.password
        if password:
            first = first.replace(str(password), "***")
        raise StoreError(f"the store cannot be read now: {first}") from None
    return f"{row[0]}-{row[1]}-{row[2]}"
