"""reply outbox: turn outcomes for callers that asked for them (`reply_to`)

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


def upgrade() -> None:
    op.create_table(
        "lash_reply_outbox",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=600), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "idempotency_key"),
    )
    with op.batch_alter_table("lash_reply_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lash_reply_outbox_unsent", ["sent_at", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("lash_reply_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_reply_outbox_unsent")
    op.drop_table("lash_reply_outbox")
