"""advdb's own folder: cached models and DuckDB state live in ``ADVDB_HOME`` (default
``~/.cache/advdb``). Where a store is lives in :mod:`advdb.store.location`."""

from __future__ import annotations

import os
from pathlib import Path


def advdb_home() -> Path:
    """Folder for cached models and DuckDB state owned by advdb."""
    home = Path(os.environ.get("ADVDB_HOME") or Path.home() / ".cache" / "advdb")
    home.mkdir(parents=True, exist_ok=True)
    return home
