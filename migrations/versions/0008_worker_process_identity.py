"""worker process identity: the kernel and pid namespace a worker runs in, and its process start time

Adds ``workers.node`` (the boot id and pid namespace of the worker's machine or container) and
``workers.process_start`` (when its process started, in clock ticks since boot). A worker on
the same node is live while a process with its pid *and* start time exists: a reused pid no
longer keeps a dead worker live, and containers that share a host name but not a pid
namespace no longer reap each other's workers. Workers stored before this revision have
neither and are judged by host name and pid, as before.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("node", sa.String(128), nullable=True))
        batch.add_column(sa.Column("process_start", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("process_start")
        batch.drop_column("node")
