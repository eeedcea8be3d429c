"""trajectory row ids: batches locate their rows by row_id; no (run, image, iteration) B-tree

The composite primary key of ``trajectory`` cost half the ingest speed on both backends.
Rows now carry a ``row_id``; a batch's rows are ``first_row … first_row + n_rows − 1``.
SQLite: ``row_id`` is the rowid (``INTEGER PRIMARY KEY``). PostgreSQL: a BRIN index over
``(row_id, run_id)`` and a sequence that hands each batch a block of 2³² row ids.
Existing rows are numbered batch by batch, in (run, batch, image, iteration) order.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from advdb.errors import SchemaError

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATS = (
    "p_init",
    "p_target",
    "p_other",
    "z_init",
    "z_target",
    "z_other",
    "loss",
    "grad_l2",
    "step_l2",
    "l1",
    "l2",
    "linf",
)
DATA = ("run_id", "image_id", "iteration", "search_step", "pred", *STATS)
ROW_BLOCKS = "trajectory_row_blocks"
ROW_BLOCK_SIZE = 1 << 32


def _data_columns(*, keyed: bool) -> list[sa.Column]:
    return [
        sa.Column("run_id", sa.Integer(), primary_key=keyed, nullable=False),
        sa.Column("image_id", sa.Integer(), primary_key=keyed, nullable=False),
        sa.Column("iteration", sa.Integer(), primary_key=keyed, nullable=False),
        sa.Column("search_step", sa.SmallInteger(), nullable=False),
        sa.Column("pred", sa.SmallInteger(), nullable=False),
        *[sa.Column(name, sa.REAL(), nullable=False) for name in STATS],
    ]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    pg = _postgresql()
    row_id = sa.Column(
        "row_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=False
    )
    op.create_table(
        "trajectory_new",
        row_id,
        *_data_columns(keyed=False),
        *([] if pg else [sa.PrimaryKeyConstraint("row_id", name="trajectory_pkey")]),
    )
    data = ", ".join(DATA)
    op.execute(
        f"INSERT INTO trajectory_new (row_id, {data}) "
        "SELECT row_number() OVER (ORDER BY t.run_id, ri.batch_index, t.image_id, t.iteration), "
        + ", ".join(f"t.{c}" for c in DATA)
        + " FROM trajectory t JOIN run_images ri ON ri.run_id = t.run_id AND ri.image_id = t.image_id"
    )
    bind = op.get_bind()
    before = bind.execute(sa.text("SELECT count(*) FROM trajectory")).scalar() or 0
    after = bind.execute(sa.text("SELECT count(*) FROM trajectory_new")).scalar() or 0
    if before != after:
        raise SchemaError(
            f"cannot upgrade: {before - after} trajectory rows belong to no image of their run's plan "
            "(run_images); nothing was changed — delete those runs (advdb runs delete) and upgrade again"
        )
    op.create_table(
        "_advdb_batch_rows",
        sa.Column("run_id", sa.Integer(), primary_key=True),
        sa.Column("batch_index", sa.Integer(), primary_key=True),
        sa.Column("first_row", sa.BigInteger(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO _advdb_batch_rows (run_id, batch_index, first_row, n_rows) "
        "SELECT ri.run_id, ri.batch_index, min(n.row_id), count(*) FROM trajectory_new n "
        "JOIN run_images ri ON ri.run_id = n.run_id AND ri.image_id = n.image_id GROUP BY ri.run_id, ri.batch_index"
    )
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("first_row", sa.BigInteger(), nullable=True))
    match = "c.run_id = batches.run_id AND c.batch_index = batches.batch_index"
    op.execute(
        f"UPDATE batches SET first_row = coalesce((SELECT c.first_row FROM _advdb_batch_rows c WHERE {match}), 0), "
        f"n_rows = coalesce((SELECT c.n_rows FROM _advdb_batch_rows c WHERE {match}), 0)"
    )
    with op.batch_alter_table("batches") as batch:
        batch.alter_column("first_row", existing_type=sa.BigInteger(), nullable=False)
    op.drop_table("_advdb_batch_rows")
    op.drop_table("trajectory")
    op.rename_table("trajectory_new", "trajectory")
    if pg:
        op.create_index("ix_trajectory_brin", "trajectory", ["row_id", "run_id"], postgresql_using="brin")
        last = bind.execute(sa.text("SELECT coalesce(max(row_id), 0) FROM trajectory")).scalar() or 0
        op.execute(f"CREATE SEQUENCE {ROW_BLOCKS} START WITH {int(last) // ROW_BLOCK_SIZE + 1}")


def downgrade() -> None:
    pg = _postgresql()
    op.create_table("trajectory_old", *_data_columns(keyed=True))
    data = ", ".join(DATA)
    op.execute(f"INSERT INTO trajectory_old ({data}) SELECT {data} FROM trajectory")
    op.drop_table("trajectory")
    op.rename_table("trajectory_old", "trajectory")
    if pg:
        op.execute(f"DROP SEQUENCE IF EXISTS {ROW_BLOCKS}")
        # the primary key keeps the name it was created with; give it the one revision 0002 gave it
        op.execute("ALTER TABLE trajectory RENAME CONSTRAINT trajectory_old_pkey TO trajectory_pkey")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("first_row")
