"""workers and batch claims: many processes share one run (torchrun, --join, --join-key)

Adds ``workers`` (one row per process working on a run, with its heartbeat),
``batch_claims`` (which worker may attack which batch, until when), ``batches.worker_id``
and a unique ``runs.launch_key``. Runs made before this revision get their claim rows the
first time a worker joins them.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_workers_run", "workers", ["run_id"])
    op.create_table(
        "batch_claims",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("batch_index", sa.Integer(), primary_key=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.add_column("batches", sa.Column("worker_id", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("launch_key", sa.String(128), nullable=True))
    op.create_index("ix_runs_launch_key", "runs", ["launch_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_runs_launch_key", table_name="runs")
    # Plain DROP COLUMN on both backends (SQLite ≥ 3.35): no table rebuild, which on SQLite
    # would drop ``runs`` and cascade the delete to every table that references it.
    op.execute("ALTER TABLE runs DROP COLUMN launch_key")
    op.execute("ALTER TABLE batches DROP COLUMN worker_id")
    op.drop_table("batch_claims")
    op.drop_index("ix_workers_run", table_name="workers")
    op.drop_table("workers")
