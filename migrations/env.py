"""Alembic environment: runs on the connection advdb hands over, or on advdb's configured store."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from advdb.store.migrate import include_object_for
from advdb.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from advdb.store.engine import make_engine
    from advdb.store.location import resolve_store

    url = config.get_main_option("sqlalchemy.url") or None
    engine = make_engine(resolve_store(url))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
