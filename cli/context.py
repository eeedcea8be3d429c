"""What every command shares: the root options (``--db``) and opening the store they name."""

from __future__ import annotations

from advdb.store import Store, open_store


class State:
    """The root command's options, set by its callback before any command runs."""

    db: str | None = None


def store() -> Store:
    """Open the store named by ``--db`` (or ``ADVDB_DATABASE_URL``, or ./advdb.db), creating it on first use."""
    return open_store(State.db)
