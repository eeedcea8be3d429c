"""The store's artifact root: the one folder where every worker writes adversarial image files.

The rule:

1. The first process that writes image files records the root in the store
   (``store_settings.artifact_root``): ``ADVDB_ARTIFACTS_DIR`` if set, else the folder
   beside a SQLite file (``<stem>-artifacts``), else ``./advdb-artifacts``. A root inside
   a SQLite store's folder is recorded relative to it, so the two can move together.
2. From then on every process uses the recorded root, whatever its working directory.
3. ``ADVDB_ARTIFACTS_DIR`` overrides it for one process only — a machine that mounts the
   shared folder under another path — and must name the same folder: the root holds a
   marker file ``.advdb-store`` with the store's id, and a process that writes image
   files checks it before it claims any work.
4. ``advdb db artifact-root PATH`` records a new root (after the files were moved there).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite

from advdb.errors import ConfigError, StoreError
from advdb.store.engine import Store
from advdb.store.location import StoreLocation
from advdb.store.models import Artifact, StoreSetting

MARKER = ".advdb-store"
ENV = "ADVDB_ARTIFACTS_DIR"


def _get(store: Store, key: str) -> str | None:
    with store.session() as s:
        return s.scalar(select(StoreSetting.value).where(StoreSetting.key == key))


def _set(store: Store, key: str, value: str, *, replace: bool) -> str:
    """Store ``key = value`` (only if absent unless ``replace``); returns the value in force."""
    dialect = postgresql if store.backend == "postgresql" else sqlite
    stmt = dialect.insert(StoreSetting).values(key=key, value=value)
    stmt = (
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
        if replace
        else stmt.on_conflict_do_nothing()
    )
    with store.session() as s:
        s.execute(stmt)
    got = _get(store, key)
    assert got is not None
    return got


def store_id(store: Store) -> str:
    """The store's own id (made on first use): what the marker file in its artifact root names."""
    return _get(store, "store_id") or _set(store, "store_id", uuid.uuid4().hex, replace=False)


def _base(location: StoreLocation) -> Path | None:
    return location.sqlite_path.parent if location.sqlite_path is not None else None


def _decode(location: StoreLocation, value: str) -> Path:
    base = _base(location)
    p = Path(value)
    return (base / p).resolve() if not p.is_absolute() and base is not None else p


def _encode(location: StoreLocation, root: Path) -> str:
    base = _base(location)
    if base is not None and root.is_relative_to(base):
        return str(root.relative_to(base)) or "."
    return str(root)


def recorded_root(store: Store) -> Path | None:
    """The artifact root recorded in the store, or None before the first image file."""
    value = _get(store, "artifact_root")
    return _decode(store.location, value) if value is not None else None


def artifact_root(store: Store) -> Path:
    """Where this process finds the store's image files (rule above; no check, no write)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).resolve()
    return recorded_root(store) or store.location.artifacts_dir


def _read_marker(root: Path) -> str | None:
    try:
        return str(json.loads((root / MARKER).read_text())["store_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_marker(store: Store, root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text(json.dumps({"store_id": store_id(store), "store": store.location.masked}) + "\n")
    except OSError as exc:
        raise StoreError(f"cannot create the artifact root {root}: {exc.strerror or exc}") from None


def _has_artifacts(store: Store) -> bool:
    with store.session() as s:
        return bool(s.scalar(select(exists().where(Artifact.run_id.is_not(None)))))


def ensure_artifact_root(store: Store) -> Path:
    """The artifact root, recorded and checked for a process about to write image files.

    Raises a one-line :class:`StoreError` when the root is not reachable from this
    machine (no marker: the shared folder is not mounted there) or is another store's.
    """
    if recorded_root(store) is None:
        root = artifact_root(store)
        if _read_marker(root) not in (None, store_id(store)):
            raise StoreError(
                f"{root} is the artifact root of another advdb store: give this store its own folder ({ENV})"
            )
        _write_marker(store, root)
        _set(store, "artifact_root", _encode(store.location, root), replace=False)
    root = artifact_root(store)
    found = _read_marker(root)
    if found is None and os.environ.get(ENV) is None and not _has_artifacts(store):
        _write_marker(store, root)  # a fresh root that was never used (or was removed before any file)
        found = store_id(store)
    if found is None:
        raise StoreError(
            f"the store's artifact root {root} is not reachable from {socket.gethostname()} (no {MARKER} there): "
            f"mount the shared folder at that path, set {ENV} to where it is mounted, "
            "or record a new root with `advdb db artifact-root PATH`"
        )
    if found != store_id(store):
        raise StoreError(
            f"{root} is the artifact root of another advdb store, not of {store.location.masked}: fix {ENV}"
        )
    if not os.access(root, os.W_OK):
        raise StoreError(f"the artifact root {root} is not writable by this process: fix its permissions")
    return root


def set_artifact_root(store: Store, path: Path) -> Path:
    """Record ``path`` (an existing folder holding the store's files) as the new artifact root."""
    root = path.resolve()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder: create it (and move the run-* folders there) first")
    if _read_marker(root) not in (None, store_id(store)):
        raise StoreError(f"{root} is the artifact root of another advdb store")
    _write_marker(store, root)
    _set(store, "artifact_root", _encode(store.location, root), replace=True)
    return root
