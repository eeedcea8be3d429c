"""The web view's access to the store: one read-only query session, reopened when the store changes."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa

from advdb.analytics.query import QuerySession
from advdb.analytics.sqlfiles import sql_text
from advdb.store.location import StoreLocation

VERSION_SQL = (
    "SELECT (SELECT count(*) FROM store.batches), (SELECT count(*) FROM store.runs), "
    "(SELECT max(coalesce(updated_at, created_at)) FROM store.runs)"
)


class StoreReader:
    """Read-only queries for the pages, one at a time (a DuckDB connection serves one thread).

    The session is reopened when the store has changed (a batch committed, a run created or
    updated), so the columnar copy catches up and pages show what the store holds now.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._lock = threading.Lock()
        self._session: QuerySession | None = None
        self._opened_at: str | None = None

    def version(self) -> str:
        """A token that changes whenever the store does (what pages poll to refresh)."""
        with self._lock:
            return self._current()[1]

    def query(self, name: str, **params: Any) -> pa.Table:
        """Run the report query ``name`` (``advdb/analytics/sql/name.sql``)."""
        return self.sql(sql_text(name), params or None)

    def sql(self, text: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run read-only SQL (the SQL box); a write or a file access is a QueryError."""
        with self._lock:
            session, _ = self._current()
            return session.query(text, params)

    def session(self) -> QuerySession:
        """The up-to-date session; the caller holds :attr:`lock` while using it."""
        return self._current()[0]

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def _current(self) -> tuple[QuerySession, str]:
        if self._session is None:
            self._session = QuerySession(self.location)
        row = self._session.con.execute(VERSION_SQL).fetchone() or (0, 0, None)
        version = f"{row[0]}-{row[1]}-{row[2]}"
        if self._opened_at is not None and version != self._opened_at:
            self._session.close()
            self._session = QuerySession(self.location)
        self._opened_at = version
        return self._session, version

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
