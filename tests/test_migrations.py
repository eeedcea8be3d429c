"""Migrations: upgrade from empty on both backends, agreement with the models, behind-head message."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from advdb.errors import SchemaError
from advdb.store import open_store
from advdb.store.engine import connect
from advdb.store.location import resolve_store
from advdb.store.migrate import alembic_config, current_revision, head_revision, include_object_for, upgrade
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
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": False,
                    "include_object": include_object_for(conn.dialect.name),
                },
            )
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


def test_opening_waits_out_a_writer_on_a_store_not_yet_in_wal_mode(tmp_path: Path) -> None:
    """Switching a new file to WAL while another process writes it is refused by SQLite at once,
    without the busy handler (torchrun's ranks opening one new store); opening waits instead."""
    path = tmp_path / "store.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        with connect(resolve_store(f"sqlite:///{path}")) as store, store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    finally:
        release.join()
        holder.close()


def test_foreign_database_is_refused(sqlite_url: str) -> None:
    import sqlite3

    path = sqlite_url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE something_else (a INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="no advdb schema"):
        open_store(sqlite_url)


def _fill_revision_0003(store_url: str) -> tuple[int, list[int]]:
    """A store at revision 0003 holding one attack run: 2 batches × 3 images × 4 iterations."""
    import numpy as np
    from sqlalchemy import text

    from advdb.store.catalogue import register_dataset

    with open_store(store_url, check_schema=False) as store:
        upgrade(store, "0003")
        _, image_ids = register_dataset(
            store,
            name="m",
            kind="test",
            fingerprint="m",
            labels=np.zeros(6, np.int64),
            image_shape=[1, 2, 2],
            n_classes=10,
        )
        stats = ", ".join(["0.5"] * 12)
        with store.engine.begin() as conn:  # the runs table as revision 0003 has it (the models are at head)
            conn.execute(
                text(
                    "INSERT INTO runs (kind, status, config, versions, synthetic, created_at) "
                    "VALUES ('attack', 'running', '{}', '{}', false, '2026-01-01 00:00:00')"
                )
            )
            run_id = conn.execute(text("SELECT max(run_id) FROM runs")).scalar_one()

            for pos, image_id in enumerate(image_ids.tolist()):
                b = pos // 3
                conn.execute(
                    text("INSERT INTO run_images VALUES (:r, :i, :p, :b, 0, 1)"), dict(r=run_id, i=image_id, p=pos, b=b)
                )
                for it in (3, 1, 2, 0):  # stored out of order: the migration numbers rows by (batch, image, iteration)
                    conn.execute(
                        text(f"INSERT INTO trajectory VALUES (:r, :i, :t, 0, :t, {stats})"),
                        dict(r=run_id, i=image_id, t=it),
                    )
            for b in (1, 0):
                conn.execute(
                    text("INSERT INTO batches VALUES (:r, :b, 3, 12, 0.1, '2026-01-01 00:00:00')"), dict(r=run_id, b=b)
                )
    return run_id, image_ids.tolist()


def test_upgrade_numbers_existing_trajectory_rows_batch_by_batch(store_url: str) -> None:
    from sqlalchemy import text

    run_id, image_ids = _fill_revision_0003(store_url)
    with open_store(store_url, check_schema=False) as store:
        upgrade(store)
        with store.engine.connect() as conn:
            batches = conn.execute(
                text("SELECT batch_index, first_row, n_rows FROM batches ORDER BY batch_index")
            ).all()
            rows = conn.execute(text("SELECT row_id, image_id, iteration FROM trajectory ORDER BY row_id")).all()
    assert [tuple(b) for b in batches] == [(0, 1, 12), (1, 13, 12)]
    assert [r[0] for r in rows] == list(range(1, 25))
    assert [(r[1], r[2]) for r in rows] == [(i, t) for i in image_ids for t in range(4)]
    # new batches continue after the migrated rows, and the columnar copy reads them by row id
    from advdb.analytics.query import QuerySession
    from advdb.store.ingest import Ingestor

    with open_store(store_url) as store:
        location = store.location
    with Ingestor(location) as ing:
        assert ing._first_row() > 24
    with QuerySession(location) as q:
        got = q.query(
            "SELECT count(*) AS n, sum(iteration) AS s FROM trajectory WHERE run_id = ?".replace("?", str(run_id))
        )
    assert got.to_pylist() == [{"n": 24, "s": 6 * 6}]


def test_downgrade_keeps_trajectory_rows(store_url: str) -> None:
    from sqlalchemy import text

    _fill_revision_0003(store_url)
    with open_store(store_url, check_schema=False) as store:
        upgrade(store)
        cfg = alembic_config(store)
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*), sum(iteration) FROM trajectory")).one() == (24, 36)
            cols = {c["name"] for c in inspect(conn).get_columns("batches")}
            assert "first_row" not in cols
            pk = inspect(conn).get_pk_constraint("trajectory")["constrained_columns"]
            assert pk == ["run_id", "image_id", "iteration"]


def test_upgrade_refuses_rows_outside_the_plan_and_changes_nothing(store_url: str, cli) -> None:  # noqa: ANN001
    from sqlalchemy import text

    run_id, image_ids = _fill_revision_0003(store_url)
    stats = ", ".join(["0.5"] * 12)
    with open_store(store_url, check_schema=False) as store, store.engine.begin() as conn:
        conn.execute(text("DELETE FROM run_images WHERE image_id = :i"), dict(i=image_ids[0]))  # 4 rows now orphaned
        conn.execute(text(f"INSERT INTO trajectory VALUES (:r, :i, 9, 0, 9, {stats})"), dict(r=run_id, i=image_ids[1]))
    code, _out, err = cli("--db", store_url, "db", "upgrade")
    assert code == SchemaError.exit_code
    assert (
        "4 trajectory rows belong to no image" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    )
    with open_store(store_url, check_schema=False) as store:
        assert current_revision(store) == "0003"
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM trajectory")).scalar() == 25
            assert "first_row" not in {c["name"] for c in inspect(conn).get_columns("batches")}


def test_column_lists_agree_with_the_models() -> None:
    from advdb.store import columns, models, records

    assert (
        tuple(c.name for c in models.Trajectory.__table__.columns if c.name != "row_id") == columns.TRAJECTORY_COLUMNS
    )
    assert {c.name for c in models.Sample.__table__.columns} == {"run_id", *columns.SAMPLE_COLUMNS}
    assert {c.name for c in models.Artifact.__table__.columns} == {"run_id", *columns.ARTIFACT_COLUMNS}
    for record, model in (
        (records.RunRecord, models.Run),
        (records.ClassifierRecord, models.Classifier),
        (records.DatasetRecord, models.Dataset),
    ):
        names = {f.name for f in dataclasses.fields(record)}
        assert names <= {c.name for c in model.__table__.columns}, names - {c.name for c in model.__table__.columns}
    assert {f.name for f in dataclasses.fields(records.RunRecord)} == {c.name for c in models.Run.__table__.columns}
