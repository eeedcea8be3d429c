"""Alembic glue: upgrade a store, report its revision, and refuse a store behind head."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from advdb.errors import SchemaError, StoreError
from advdb.store.engine import Store

SCHEMA_LOCK_KEY = 0x616476646200  # PostgreSQL advisory lock held while a process creates the schema


def migrations_dir() -> Path:
    """The folder of the installed ``advdb.migrations`` package (``migrations/`` in a checkout)."""
    return Path(str(resources.files("advdb.migrations")))


def alembic_config(store: Store | None = None) -> Config:
    """An Alembic config pointing at advdb's migrations (and at ``store``'s URL if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if store is not None:
        cfg.set_main_option(
            "sqlalchemy.url", store.location.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


def include_object_for(dialect: str) -> Callable[..., bool]:
    """Alembic ``include_object`` hook: skip schema items the models create on another dialect only."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        only = getattr(obj, "info", {}).get("only_on") if not reflected else None
        return only is None or only == dialect

    return include


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return heads[0]


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _known_revisions() -> set[str]:
    return {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def revision_state(revision: str | None) -> str:
    """``up to date``, ``empty``, ``behind`` (upgrade the store) or ``ahead`` (upgrade advdb)."""
    if revision == head_revision():
        return "up to date"
    if revision is None:
        return "empty"
    return "behind" if revision in _known_revisions() else "ahead"


def upgrade(store: Store, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the store to ``revision``; returns (before, after)."""
    before = current_revision(store)
    if before is not None and before not in _known_revisions():
        raise SchemaError(
            f"the store {store.location.masked} is at revision {before}, newer than this advdb knows "
            f"(head {head_revision()}): upgrade advdb"
        )
    cfg = alembic_config(store)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(store)


def _check_not_damaged(store: Store, conn: Any) -> None:
    """A SQLite file whose pages are damaged is said to be so, not mistaken for a foreign database."""
    if conn.dialect.name != "sqlite":
        return
    try:
        result = conn.exec_driver_sql("PRAGMA quick_check(1)").scalar()
    except Exception as exc:  # noqa: BLE001 - any failure to read the pages means the same
        result = str(exc).splitlines()[0]
    if result != "ok":
        raise StoreError(f"the store file {store.location.sqlite_path} is damaged ({result}): restore it from a backup")


def _create_at_head(store: Store) -> None:
    """Create the schema in an empty database, one process at a time (torchrun starts many at once)."""
    cfg = alembic_config(store)
    with store.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE holds the write lock from here
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        if MigrationContext.configure(conn).get_current_revision() is not None:
            return  # another process created it while this one waited
        if inspect(conn).get_table_names():
            _check_not_damaged(store, conn)
            raise SchemaError(
                f"{store.location.masked} holds tables but no advdb schema revision; "
                "point --db at an advdb store or an empty database"
            )
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_schema(store: Store, *, create: bool = True) -> None:
    """Create an empty store at head; refuse a store that is behind or ahead of the code."""
    rev = current_revision(store)
    head = head_revision()
    if rev == head:
        return
    if rev is None:
        if not create:
            raise SchemaError(f"{store.location.masked} is empty: run `advdb db upgrade` to create the schema")
        _create_at_head(store)
        return
    if rev not in _known_revisions():
        raise SchemaError(
            f"the store {store.location.masked} is at revision {rev}, newer than this advdb knows "
            f"(head {head}): upgrade advdb"
        )
    raise SchemaError(
        f"the store {store.location.masked} is at schema revision {rev}, behind advdb's {head}: "
        "run `advdb db upgrade` (back it up first)"
    )
