"""Where a store is: its database URL and its artifact folder.

Resolution order for the database URL: an explicit argument, then ``ADVDB_DATABASE_URL``,
then ``sqlite:///advdb.db`` in the current directory. Artifacts (adversarial image files)
live beside a SQLite store (``<stem>-artifacts/``) or under ``ADVDB_ARTIFACTS_DIR``; the
root every worker uses is recorded in the store (:mod:`advdb.store.artifact_root`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from advdb.errors import ConfigError

DEFAULT_DB_FILE = "advdb.db"
# How long a process waits for a SQLite store's write lock (SQLAlchemy and DuckDB connections alike).
SQLITE_BUSY_TIMEOUT_MS = 60_000


def default_database_url() -> str:
    """The URL used when none is given."""
    return os.environ.get("ADVDB_DATABASE_URL") or f"sqlite:///{DEFAULT_DB_FILE}"


def parse_url(url: str) -> URL:
    """Parse and normalise a database URL; plain paths become SQLite URLs."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {mask_url(url)!r}: {exc}") from None
    except ValueError:  # a port that is not a number
        raise ConfigError(f"invalid database URL {mask_url(url)!r}: the port must be a number") from None
    backend = u.get_backend_name()
    if backend == "postgresql":
        if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            u = u.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            f"unsupported database {backend!r} in {mask_url(url)!r}: use sqlite:///FILE or postgresql://USER@HOST/DB"
        )
    if backend == "sqlite" and u.database in (None, "", ":memory:"):
        raise ConfigError(
            "an in-memory SQLite store cannot be shared with DuckDB: give a file, e.g. sqlite:///advdb.db"
        )
    return u


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        u = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"
    return u.render_as_string(hide_password=True)


@dataclass(frozen=True)
class StoreLocation:
    """Where one store keeps its rows and its files."""

    url: URL
    artifacts_dir: Path

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.url.database or "").resolve() if self.backend == "sqlite" else None

    @property
    def masked(self) -> str:
        return mask_url(self.url)


def resolve_store(url: str | None = None) -> StoreLocation:
    """Resolve the store's URL and artifact folder from an argument or the environment."""
    u = parse_url(url or default_database_url())
    env_dir = os.environ.get("ADVDB_ARTIFACTS_DIR")
    if env_dir:
        artifacts = Path(env_dir)
    elif u.get_backend_name() == "sqlite":
        db = Path(u.database or "").resolve()
        artifacts = db.with_name(db.stem + "-artifacts")
    else:
        artifacts = Path.cwd() / "advdb-artifacts"
    return StoreLocation(url=u, artifacts_dir=artifacts.resolve())
