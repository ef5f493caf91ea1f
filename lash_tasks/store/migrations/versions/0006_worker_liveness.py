"""worker liveness: heartbeats per worker incarnation, the incarnation holding an effect lease

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
        "lash_worker_heartbeats",
        sa.Column("incarnation_id", sa.String(length=200), nullable=False),
        sa.Column("owner_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("reaped_at", sa.BigInteger(), nullable=True),
        sa.Column("liveness", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("incarnation_id"),
    )
    with op.batch_alter_table("lash_worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index("ix_lash_worker_heartbeats_owner", ["owner_id"], unique=False)
    with op.batch_alter_table("lash_effect_journal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_incarnation_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lash_effect_journal", schema=None) as batch_op:
        batch_op.drop_column("lease_incarnation_id")
    with op.batch_alter_table("lash_worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_worker_heartbeats_owner")
    op.drop_table("lash_worker_heartbeats")
