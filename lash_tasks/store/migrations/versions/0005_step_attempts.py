"""active turns count the attempts of their current step

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "lash_active_turns",
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("lash_active_turns", sa.Column("last_error", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lash_active_turns") as batch:
        batch.drop_column("last_error")
        batch.drop_column("attempts")
