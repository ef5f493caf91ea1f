"""attachment manifest rows keep the media type their put named

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


def upgrade() -> None:
    # Nullable: rows written before this revision never named one.
    with op.batch_alter_table("lash_attachment_manifest", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_type", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lash_attachment_manifest", schema=None) as batch_op:
        batch_op.drop_column("media_type")
