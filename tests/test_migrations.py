"""Migrations: upgrade from empty on both backends, agreement with the models, behind-head message."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from advdb.errors import SchemaError
from advdb.store import open_store
from advdb.store.migrate import alembic_config, current_revision, head_revision, upgrade
from advdb.store.models import Base


def test_upgrade_from_empty_creates_every_table(store_url: str) -> None:
    with open_store(store_url, check_schema=False) as store:
        assert current_revision(store) is None
        before, after = upgrade(store)
        assert (before, after) == (None, head_revision())
        tables = set(inspect(store.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_models_and_migrations_agree(store_url: str) -> None:
    with open_store(store_url) as store:  # created at head on first use
        with store.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(store_url: str) -> None:
    with open_store(store_url) as store:
        cfg = alembic_config(store)
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert current_revision(store) is None
        upgrade(store)
        assert current_revision(store) == head_revision()


def test_store_behind_head_names_the_upgrade_command(store_url: str, cli) -> None:  # noqa: ANN001
    with open_store(store_url, check_schema=False) as store:
        upgrade(store, "0002")
    with pytest.raises(SchemaError, match="advdb db upgrade"):
        open_store(store_url)
    code, _out, err = cli("--db", store_url, "runs", "list")
    assert code == SchemaError.exit_code
    assert "advdb db upgrade" in err and "Traceback" not in err
    code, out, _ = cli("--db", store_url, "db", "current")
    assert code == 0 and "0002" in out and "behind" in out
    code, out, _ = cli("--db", store_url, "db", "upgrade")
    assert code == 0 and "0002 → " + head_revision() in out
    with open_store(store_url) as store:
        assert current_revision(store) == head_revision()


def test_sqlite_store_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_foreign_database_is_refused(sqlite_url: str) -> None:
    import sqlite3

    path = sqlite_url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE something_else (a INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="no advdb schema"):
        open_store(sqlite_url)
