"""process registry: processes with leases, a change feed, keyed events and handle grants;
delivery policy on queued work; a child session's parent

The process tables of 0001 were scaffolding nothing wrote, so they are rebuilt, not altered.

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
    with op.batch_alter_table("lash_processes", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_processes_status")
        batch_op.drop_index("ix_lash_processes_session")
    op.drop_table("lash_processes")
    op.drop_table("lash_process_events")

    op.create_table(
        "lash_processes",
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("wake_session_id", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=False),
        sa.Column("registration_hash", sa.String(length=64), nullable=False),
        sa.Column("registration", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_incarnation_id", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=200), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("lease_claimed_at", sa.BigInteger(), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("first_started_at", sa.BigInteger(), nullable=True),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("process_id"),
    )
    with op.batch_alter_table("lash_processes", schema=None) as batch_op:
        batch_op.create_index("ix_lash_processes_status", ["status"], unique=False)
        batch_op.create_index("ix_lash_processes_session", ["session_id"], unique=False)
        batch_op.create_index("ix_lash_processes_wake_session", ["wake_session_id"], unique=False)
        batch_op.create_index("ix_lash_processes_change_seq", ["change_seq"], unique=False)

    op.create_table(
        "lash_process_change_clock",
        sa.Column("singleton", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("current_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("singleton"),
    )
    op.create_table(
        "lash_process_events",
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=400), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "seq"),
        sa.UniqueConstraint("process_id", "idempotency_key", name="uq_lash_process_events_key"),
    )
    op.create_table(
        "lash_process_grants",
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("granted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "session_id"),
    )
    with op.batch_alter_table("lash_process_grants", schema=None) as batch_op:
        batch_op.create_index("ix_lash_process_grants_session", ["session_id"], unique=False)

    with op.batch_alter_table("lash_queued_work", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "delivery_policy",
                sa.String(length=32),
                server_default=sa.text("'after_current_turn'"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("turn_id", sa.String(length=200), nullable=True))

    with op.batch_alter_table("lash_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_session_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("parent_process_id", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_lash_sessions_parent", ["parent_session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lash_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_sessions_parent")
        batch_op.drop_column("parent_process_id")
        batch_op.drop_column("parent_session_id")
    with op.batch_alter_table("lash_queued_work", schema=None) as batch_op:
        batch_op.drop_column("turn_id")
        batch_op.drop_column("delivery_policy")
    with op.batch_alter_table("lash_process_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_process_grants_session")
    op.drop_table("lash_process_grants")
    op.drop_table("lash_process_events")
    op.drop_table("lash_process_change_clock")
    with op.batch_alter_table("lash_processes", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_processes_change_seq")
        batch_op.drop_index("ix_lash_processes_wake_session")
        batch_op.drop_index("ix_lash_processes_session")
        batch_op.drop_index("ix_lash_processes_status")
    op.drop_table("lash_processes")
    op.create_table(
        "lash_process_events",
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "seq"),
    )
    op.create_table(
        "lash_processes",
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=False),
        sa.Column("registration_hash", sa.String(length=64), nullable=False),
        sa.Column("registration", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=200), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("first_started_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("process_id"),
    )
    with op.batch_alter_table("lash_processes", schema=None) as batch_op:
        batch_op.create_index("ix_lash_processes_session", ["session_id"], unique=False)
        batch_op.create_index("ix_lash_processes_status", ["status"], unique=False)
