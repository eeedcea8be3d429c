"""Riding out a database that goes away: a failover, a restart, a reboot of the server.

A worker's database calls (claims, heartbeats, its end) and the writer's commits retry a
lost connection with backoff for ``ADVDB_DB_RETRY_SECONDS`` (default 300 s, long enough for
a failover); the run then goes on where it was. Past that, the worker stops with one line
and the run resumes exactly (``advdb attack --resume``) once the database is back. Only
connection failures are retried: an error the database reports (a broken constraint, a
full disk) is raised at once.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

from advdb.errors import ConfigError, StoreError, StoreUnavailable

T = TypeVar("T")

RETRY_ENV = "ADVDB_DB_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 300.0

# What psycopg, libpq and DuckDB's postgres scanner say when the server is not there (any more).
_LOST = re.compile(
    r"connection refused|could not connect|unable to connect|server closed the connection|"
    r"terminating connection|no connection to the server|connection (?:is|was|has been) closed|"
    r"database system is (?:shutting down|starting up|in recovery mode|not yet accepting)|"
    r"connection reset|broken pipe|ssl connection has been closed|connection timed out|"
    r"timeout expired|could not receive data|could not send data|server conn crashed|lost connection",
    re.IGNORECASE,
)


def is_connection_loss(message: str) -> bool:
    """Whether a database error message says the connection was lost or never made."""
    return bool(_LOST.search(message))


def retry_seconds() -> float:
    """How long to wait for a lost database (``ADVDB_DB_RETRY_SECONDS``; 0 gives up at once)."""
    raw = os.environ.get(RETRY_ENV, "")
    if not raw:
        return DEFAULT_RETRY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{RETRY_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ConfigError(f"{RETRY_ENV} must be 0 or more seconds, not {raw}")
    return value


def gave_up(what: str, waited: float, last: BaseException) -> StoreError:
    return StoreError(
        f"the database did not answer for {waited:.0f} s ({what}: {str(last).splitlines()[0][:200]}); "
        f"nothing is lost: once it is back, resume with `advdb attack --resume RUN` (wait longer with {RETRY_ENV})"
    )


def patiently(call: Callable[[], T], *, what: str, seconds: float | None = None) -> T:
    """``call()``, retried with backoff while the database is unavailable, for at most ``seconds``."""
    limit = retry_seconds() if seconds is None else seconds
    start = time.monotonic()
    delay = 0.25
    while True:
        try:
            return call()
        except StoreUnavailable as exc:
            waited = time.monotonic() - start
            if waited + delay > limit:
                raise gave_up(what, waited, exc) from None
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
