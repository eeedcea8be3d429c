"""The store's schema described as plain records (tables, columns, types, keys), for its reference page."""

from __future__ import annotations

from dataclasses import dataclass

from advdb.store.models import Base


@dataclass(frozen=True)
class ColumnInfo:
    """One column: its SQLAlchemy type name, its keys (``PK``, ``PK (part)``, ``→ table.column``), and its doc."""

    name: str
    type: str
    keys: str
    nullable: bool
    doc: str | None


@dataclass(frozen=True)
class TableInfo:
    """One table of the store, with the docstring of its model."""

    name: str
    doc: str
    columns: tuple[ColumnInfo, ...]


def describe_schema() -> list[TableInfo]:
    """Every table of :mod:`advdb.store.models`, sorted by name."""
    docs = {str(getattr(m.local_table, "name", "")): (m.class_.__doc__ or "") for m in Base.registry.mappers}
    out = []
    for table in sorted(Base.metadata.sorted_tables, key=lambda t: t.name):
        columns = []
        for col in table.columns:
            keys = ["PK" if len(table.primary_key.columns) == 1 else "PK (part)"] if col.primary_key else []
            keys += [f"→ `{fk.target_fullname}`" for fk in col.foreign_keys]
            doc = col.comment or col.doc
            columns.append(ColumnInfo(col.name, str(col.type), ", ".join(keys), bool(col.nullable), doc))
        out.append(TableInfo(table.name, docs.get(table.name, ""), tuple(columns)))
    return out
