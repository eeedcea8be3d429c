"""The SQL store: schema, connection, migrations, bulk ingest and the DuckDB query layer."""

from advdb.store.engine import Store, open_store

__all__ = ["Store", "open_store"]
