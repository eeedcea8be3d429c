"""attack records: run_images, batches, samples, trajectory, artifacts

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("runs.run_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "run_images",
        sa.Column("run_id", sa.Integer(), _run_fk(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.image_id"), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("batch_index", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
    )
    op.create_index("ix_run_images_batch", "run_images", ["run_id", "batch_index"])
    op.create_table(
        "batches",
        sa.Column("run_id", sa.Integer(), _run_fk(), primary_key=True),
        sa.Column("batch_index", sa.Integer(), primary_key=True),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("attack_seconds", sa.Float(), nullable=False),
        sa.Column("committed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "samples",
        sa.Column("run_id", sa.Integer(), _run_fk(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.image_id"), primary_key=True),
        sa.Column("batch_index", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("p_init", sa.REAL(), nullable=False),
        sa.Column("first_success_iter", sa.Integer(), nullable=True),
        sa.Column("success_l1", sa.REAL(), nullable=True),
        sa.Column("success_l2", sa.REAL(), nullable=True),
        sa.Column("success_linf", sa.REAL(), nullable=True),
        sa.Column("final_pred", sa.Integer(), nullable=False),
        sa.Column("final_p_target", sa.REAL(), nullable=False),
        sa.Column("final_z_target", sa.REAL(), nullable=False),
        sa.Column("final_l1", sa.REAL(), nullable=False),
        sa.Column("final_l2", sa.REAL(), nullable=False),
        sa.Column("final_linf", sa.REAL(), nullable=False),
        sa.Column("n_iterations", sa.Integer(), nullable=False),
    )
    # The big table: no foreign key, so bulk ingest stays fast (run deletion removes its rows
    # explicitly). A rowid table, not WITHOUT ROWID: DuckDB's SQLite scanner needs ROWID for
    # queries that read no column (count(*)).
    op.create_table(
        "trajectory",
        sa.Column("run_id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), primary_key=True),
        sa.Column("iteration", sa.Integer(), primary_key=True),
        sa.Column("search_step", sa.SmallInteger(), nullable=False),
        sa.Column("pred", sa.SmallInteger(), nullable=False),
        *[
            sa.Column(name, sa.REAL(), nullable=False)
            for name in (
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
        ],
    )
    op.create_table(
        "artifacts",
        sa.Column("run_id", sa.Integer(), _run_fk(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.image_id"), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("n_bytes", sa.Integer(), nullable=False),
        sa.Column("saved_pred", sa.Integer(), nullable=False),
        sa.Column("still_adversarial", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_table("trajectory")
    op.drop_table("samples")
    op.drop_table("batches")
    op.drop_index("ix_run_images_batch", table_name="run_images")
    op.drop_table("run_images")
