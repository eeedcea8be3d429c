"""The store's tables as Parquet files, for tools that do not know advdb.

One file per table (``<table>.parquet``) and the trajectory partitioned by run in the hive
layout (``trajectory/run_id=<id>/*.parquet``), so pandas, Polars, Spark or another DuckDB
read a whole study, or one run, directly. The trajectory comes from the columnar copy
(refreshed first), the other tables from the store itself; the store is only read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from advdb.analytics.query import QuerySession
from advdb.errors import ConfigError, NotFoundError
from advdb.store.location import StoreLocation

# Tables whose rows belong to runs, and the column that says which.
RUN_COLUMN = {
    "runs": "run_id",
    "run_images": "run_id",
    "batches": "run_id",
    "batch_claims": "run_id",
    "workers": "run_id",
    "samples": "run_id",
    "trajectory": "run_id",
    "artifacts": "run_id",
    "detector_epochs": "run_id",
    "detector_results": "run_id",
    "circle_grid": "run_id",
    "transfer_results": "run_id",
    "defense_results": "run_id",
}
SKIP = frozenset({"alembic_version", "store_settings"})


def export_parquet(location: StoreLocation, out: Path, *, runs: list[int] | None = None) -> dict[str, int]:
    """Write the store (or only ``runs``) under ``out``; returns the rows written per table."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: give a folder")
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    counts: dict[str, int] = {}
    with QuerySession(location, allow_files=True) as session:
        if runs:
            known = {r for (r,) in session.con.execute("SELECT run_id FROM runs").fetchall()}
            missing = [r for r in runs if r not in known]
            if missing:
                raise NotFoundError(f"no run {missing[0]} in the store: see `advdb runs list`")
        out.mkdir(exist_ok=True)
        for table in session.tables():
            if table in SKIP:
                continue
            counts[table] = _copy(session, table, out, runs)
    return counts


def _copy(session: QuerySession, table: str, out: Path, runs: list[int] | None) -> int:
    """COPY one table (the view of that name: the columnar copy for the trajectory) to Parquet."""
    ids = ", ".join(str(int(r)) for r in runs or [])
    where = f" WHERE {RUN_COLUMN[table]} IN ({ids})" if runs and table in RUN_COLUMN else ""
    select = f'SELECT * FROM "{table}"{where}'
    n = int((session.con.execute(f"SELECT count(*) FROM ({select})").fetchone() or (0,))[0])
    if table == "trajectory":
        target = out / "trajectory"
        if target.exists():
            shutil.rmtree(target)
        session.con.execute(f"COPY ({select}) TO '{_quoted(target)}' (FORMAT parquet, PARTITION_BY (run_id))")
    else:
        session.con.execute(f"COPY ({select}) TO '{_quoted(out / (table + '.parquet'))}' (FORMAT parquet)")
    return n


def _quoted(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")
