"""catalogue and runs: datasets, images, classifiers, runs

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("split", sa.String(32), nullable=True),
        sa.Column("root", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("image_shape", sa.JSON(), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", "fingerprint", name="uq_datasets_name_fingerprint"),
    )
    op.create_table(
        "images",
        sa.Column("image_id", sa.Integer(), primary_key=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.UniqueConstraint("dataset_id", "idx", name="uq_images_dataset_idx"),
    )
    op.create_table(
        "classifiers",
        sa.Column("classifier_id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("architecture", sa.String(64), nullable=False),
        sa.Column("weights_source", sa.Text(), nullable=True),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("input_shape", sa.JSON(), nullable=False),
        sa.Column("normalization", sa.JSON(), nullable=False),
        sa.Column("test_accuracy", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", "weights_sha256", name="uq_classifiers_name_weights"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("attack", sa.String(16), nullable=True),
        sa.Column("loss", sa.String(16), nullable=True),
        sa.Column("mode", sa.String(32), nullable=True),
        sa.Column("classifier_id", sa.Integer(), sa.ForeignKey("classifiers.classifier_id"), nullable=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.dataset_id"), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("iterations", sa.Integer(), nullable=True),
        sa.Column("n_images", sa.Integer(), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_runs_kind_status", "runs", ["kind", "status"])
    op.create_index("ix_runs_loss_mode", "runs", ["loss", "mode"])


def downgrade() -> None:
    op.drop_index("ix_runs_loss_mode", table_name="runs")
    op.drop_index("ix_runs_kind_status", table_name="runs")
    op.drop_table("runs")
    op.drop_table("classifiers")
    op.drop_table("images")
    op.drop_table("datasets")
