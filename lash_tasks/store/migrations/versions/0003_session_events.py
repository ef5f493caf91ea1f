"""session events: the database event log for deployments without Redis

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
        "lash_session_events",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq"),
    )
    with op.batch_alter_table("lash_session_events", schema=None) as batch_op:
        batch_op.create_index("ix_lash_session_events_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lash_session_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_session_events_created")
    op.drop_table("lash_session_events")
