"""Opening a store: the SQLAlchemy engine with the right pragmas, and its schema check."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from advdb.errors import StoreError, StoreUnavailable
from advdb.store.location import SQLITE_BUSY_TIMEOUT_MS, StoreLocation
from advdb.store.retry import is_connection_loss, patiently


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Set up a new SQLite connection, waiting out the locks SQLite's busy handler does not wait for.

    Opening a WAL database can meet an exclusive lock that SQLite reports at once as "database
    is locked" without calling the busy handler: the last connection of another process
    checkpointing and removing the WAL as it closes, or the first one recovering it
    (sqlite.org/wal.html, "Sometimes Queries Return SQLITE_BUSY In WAL Mode"). Those locks last
    milliseconds, so the set-up is retried until the busy timeout has passed.
    """
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN IMMEDIATE instead
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            _apply_pragmas(dbapi_conn)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _apply_pragmas(dbapi_conn: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA page_size=16384")  # takes effect only when the file is created
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def make_engine(location: StoreLocation) -> Engine:
    """An engine for the store: WAL, busy timeout and foreign keys on SQLite; pre-ping on PostgreSQL."""
    if location.backend == "sqlite":
        path = location.sqlite_path
        assert path is not None
        if not path.parent.exists():
            raise StoreError(f"cannot create the store {path}: folder {path.parent} does not exist")
        engine = create_engine(location.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        # Take the write lock at BEGIN, where the busy timeout applies: a deferred transaction
        # that reads and then writes after another process committed fails at once (SQLITE_BUSY).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        engine = create_engine(
            location.url, pool_pre_ping=True, connect_args={"connect_timeout": 5, "application_name": "advdb"}
        )
    return engine


@dataclass
class Store:
    """An open store: where it is, its engine and a session factory."""

    location: StoreLocation
    engine: Engine
    _sessions: sessionmaker[Session] = field(init=False, repr=False)

    # How long a session waits for a database that refuses connections (a failover, a restart)
    # before it fails; 0 (interactive commands) fails at once. Workers set it (advdb.store.retry).
    patience: float = 0.0

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _wait_for_connection(self) -> None:
        """With :attr:`patience`, wait until the database accepts a connection (nothing has run yet)."""

        def connect() -> None:
            try:
                with self.engine.connect():
                    return
            except DBAPIError as exc:
                if exc.connection_invalidated or is_connection_loss(str(exc)):
                    raise StoreUnavailable(_first_line(exc)) from None
                # any other failure: the session below reports it

        try:
            patiently(connect, what="connecting", seconds=self.patience)
        except StoreError:
            pass  # still away: the session below reports it

    @property
    def backend(self) -> str:
        return self.location.backend

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error.

        A database failure (a damaged file, a lost server, a read-only file) is a one-line
        :class:`StoreError`; integrity errors stay as they are for the caller to handle.
        """
        if self.patience > 0 and self.backend == "postgresql":
            self._wait_for_connection()
        try:
            with self._sessions.begin() as s:
                yield s
        except IntegrityError:
            raise
        except DBAPIError as exc:
            message = f"the store {self.location.masked} failed: {_first_line(exc)}"
            if exc.connection_invalidated or is_connection_loss(str(exc)):
                raise StoreUnavailable(message) from None
            raise StoreError(message) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(location: StoreLocation) -> Store:
    """Connect to the store and check that it answers; a URL that does not connect is a StoreError."""
    engine = make_engine(location)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError) as exc:
        engine.dispose()
        raise StoreError(f"cannot connect to the store {location.masked}: {_first_line(exc)}") from None
    return Store(location=location, engine=engine)
