"""DuckDB over the store: extensions loaded offline, the store ATTACHed as ``store``.

DuckDB's sqlite/postgres extensions come from the PyPI packages
``duckdb-extension-sqlite-scanner`` and ``duckdb-extension-postgres-scanner``, so nothing
is downloaded at run time (CI and GPU clusters often have no internet).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb
from sqlalchemy.engine import URL

from advdb.config import advdb_home
from advdb.errors import StoreError
from advdb.store.location import SQLITE_BUSY_TIMEOUT_MS, StoreLocation

_EXTENSIONS = {"sqlite": "sqlite_scanner", "postgresql": "postgres_scanner"}


def _extension_file(name: str) -> Path:
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise StoreError(
            f"the DuckDB extension package duckdb-extension-{name.replace('_', '-')} is not installed: "
            "reinstall advdb (pip install advdb)"
        ) from None
    version = duckdb.__version__
    path = Path(str(module.__file__)).parent / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise StoreError(
            f"duckdb-extension-{name.replace('_', '-')} has no build for duckdb {version}: "
            f"install the matching version (pip install 'duckdb-extension-{name.replace('_', '-')}=={version}')"
        )
    return path


def duck_connect(backend: str | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection that never downloads, with ``backend``'s scanner loaded."""
    ext_dir = advdb_home() / "duckdb_extensions"
    ext_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "extension_directory": str(ext_dir),
        }
    )
    if backend is not None:
        con.execute(f"LOAD '{_extension_file(_EXTENSIONS[backend])}'")
    return con


#: Settings of a sealed connection (:func:`sealed_connect`) that hold whatever its SQL says.
SEALED_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_persistent_secrets": False,
}


def sealed_connect(
    database: Path, attachments: dict[str, Path], *, allow_files: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection for untrusted SQL: the DuckDB file ``database`` and ``attachments`` (alias → file) read-only.

    No extension is loaded and none can be (autoload and autoinstall off; ``LOAD``/``INSTALL``
    need external access), so no scanner function (``sqlite_scan``, ``postgres_query`` …)
    exists in it whatever the form of the call; Python objects are not scanned
    (``python_enable_replacements``); file access is off unless ``allow_files`` (then the
    user's files can be read and written); and the configuration is locked, so no statement
    can undo any of it. Writes fail in the engine: every database it has is read-only (only
    its session's own ``temp`` catalogue, in memory, takes objects). Nothing it can return
    holds a store's password: it never attached a store. ``memory_limit`` (DuckDB's, e.g.
    ``4GB``) caps what its queries may hold in memory.
    """
    ext_dir = advdb_home() / "duckdb_extensions"
    ext_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {**SEALED_CONFIG, "extension_directory": str(ext_dir)}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(str(database), read_only=True, config=config)
    try:
        for alias, path in attachments.items():
            con.execute(f"ATTACH '{_quoted(str(path))}' AS {alias} (READ_ONLY)")
        con.execute("SET python_enable_replacements = false")
        if not allow_files:
            con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def libpq_dsn(url: URL) -> str:
    """A libpq key=value connection string for a PostgreSQL SQLAlchemy URL."""
    parts = {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    for key, value in url.query.items():
        if key in ("sslmode", "connect_timeout", "application_name", "options", "host"):
            parts[key] = value if isinstance(value, str) else value[0]
    parts.setdefault("connect_timeout", 5)

    def quote(v: object) -> str:
        s = str(v).replace("\\", "\\\\").replace("'", "\\'")
        return f"'{s}'"

    return " ".join(f"{k}={quote(v)}" for k, v in parts.items() if v is not None)


def attach_store(
    con: duckdb.DuckDBPyConnection, location: StoreLocation, *, read_only: bool, alias: str = "store"
) -> None:
    """ATTACH the store to ``con`` under ``alias``."""
    if location.backend == "sqlite":
        target = str(location.sqlite_path).replace("'", "''")
        opts = f"TYPE sqlite, BUSY_TIMEOUT {SQLITE_BUSY_TIMEOUT_MS}"
    else:
        target = libpq_dsn(location.url).replace("'", "''")
        opts = "TYPE postgres"
    if read_only:
        opts += ", READ_ONLY"
    try:
        con.execute(f"ATTACH '{target}' AS {alias} ({opts})")
    except duckdb.Error as exc:
        msg = str(exc).replace(location.url.password or "\0", "***") if location.url.password else str(exc)
        raise StoreError(f"DuckDB cannot attach the store {location.masked}: {msg.splitlines()[0]}") from None


def open_duck(location: StoreLocation, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """DuckDB in memory with the store attached as ``store``."""
    con = duck_connect(location.backend)
    attach_store(con, location, read_only=read_only)
    return con
