"""detectors and circles: detector_epochs, detector_results, circle_grid

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detector_epochs",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("epoch", sa.Integer(), primary_key=True),
        sa.Column("lr", sa.Float(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=False),
        sa.Column("train_accuracy", sa.Float(), nullable=False),
        sa.Column("test_accuracy", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
    )
    op.create_table(
        "detector_results",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("group_name", sa.String(64), primary_key=True),
        sa.Column("source_run_id", sa.Integer(), sa.ForeignKey("runs.run_id"), nullable=True),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
    )
    op.create_table(
        "circle_grid",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("loss", sa.String(16), primary_key=True),
        sa.Column("ix", sa.Integer(), primary_key=True),
        sa.Column("iy", sa.Integer(), primary_key=True),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("grad_norm", sa.Float(), nullable=False),
        sa.Column("pred", sa.SmallInteger(), nullable=False),
        sa.Column("p_target", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("circle_grid")
    op.drop_table("detector_results")
    op.drop_table("detector_epochs")
