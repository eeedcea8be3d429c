"""transfer and defense results: per-image evaluations of stored adversarial images

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _keys() -> list[sa.Column]:
    return [
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source_run_id", sa.Integer(), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.image_id"), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "transfer_results",
        *_keys(),
        sa.Column("pred", sa.Integer(), nullable=False),
        sa.Column("p_target", sa.REAL(), nullable=False),
        sa.Column("p_label", sa.REAL(), nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.Column("untargeted", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "defense_results",
        *_keys(),
        sa.Column("strength", sa.Float(), primary_key=True),
        sa.Column("adv_pred", sa.Integer(), nullable=False),
        sa.Column("genuine_pred", sa.Integer(), nullable=False),
        sa.Column("still_target", sa.Boolean(), nullable=False),
        sa.Column("genuine_correct", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("defense_results")
    op.drop_table("transfer_results")
