"""The SQL store: schema, connection, migrations, bulk ingest and the records it hands out.

Only this package (and ``migrations/``) speaks SQL; everyone else calls its functions and
gets plain dataclasses (:mod:`advdb.store.records`).
"""

from __future__ import annotations

from dataclasses import replace

from advdb.store.engine import Store, connect
from advdb.store.location import resolve_store

__all__ = ["Store", "open_store"]


def open_store(url: str | None = None, *, create: bool = True, check_schema: bool = True) -> Store:
    """Open the store at ``url`` (or the default); create it at head on first use.

    A store whose schema is behind the code's head raises :class:`advdb.errors.SchemaError`
    naming ``advdb db upgrade``. The location's ``artifacts_dir`` is the store's recorded
    artifact root (:mod:`advdb.store.artifact_root`) once the schema is checked.
    """
    from advdb.store.artifact_root import artifact_root
    from advdb.store.migrate import ensure_schema

    store = connect(resolve_store(url))
    if check_schema:
        try:
            ensure_schema(store, create=create)
            store.location = replace(store.location, artifacts_dir=artifact_root(store))
        except Exception:
            store.close()
            raise
    return store
