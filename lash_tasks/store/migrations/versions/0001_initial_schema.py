"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 22:43:32.676827
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
        "lash_active_turns",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("turn_id", sa.String(length=200), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("input_claim_id", sa.String(length=200), nullable=True),
        sa.Column("queue_claim_id", sa.String(length=200), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "lash_attachment_manifest",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("attachment_id", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.String(length=400), nullable=False),
        sa.Column("intent_at", sa.BigInteger(), nullable=False),
        sa.Column("committed_at", sa.BigInteger(), nullable=True),
        sa.Column("owner_kind", sa.String(length=16), nullable=True),
        sa.Column("owner_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "attachment_id"),
    )
    with op.batch_alter_table("lash_attachment_manifest", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lash_attachment_manifest_attachment", ["attachment_id"], unique=False
        )
        batch_op.create_index(
            "ix_lash_attachment_manifest_owner",
            ["session_id", "owner_kind", "owner_id"],
            unique=False,
        )

    op.create_table(
        "lash_effect_journal",
        sa.Column("scope_id", sa.String(length=200), nullable=False),
        sa.Column("replay_key", sa.String(length=600), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("turn_id", sa.String(length=200), nullable=True),
        sa.Column("envelope_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope_id", "replay_key"),
    )
    with op.batch_alter_table("lash_effect_journal", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lash_effect_journal_session_turn", ["session_id", "turn_id"], unique=False
        )

    op.create_table(
        "lash_graph_nodes",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("parent_node_id", sa.String(length=200), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(length=64), nullable=False),
        sa.Column("tombstoned_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "node_id"),
    )
    with op.batch_alter_table("lash_graph_nodes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lash_graph_nodes_session_seq", ["session_id", "seq"], unique=False
        )

    op.create_table(
        "lash_maintenance_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("job", "slot"),
    )
    op.create_table(
        "lash_pending_inputs",
        sa.Column(
            "enqueue_seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("input_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("source_key", sa.String(length=400), nullable=False),
        sa.Column("ingress", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("claim_id", sa.String(length=200), nullable=True),
        sa.Column("claim_token", sa.String(length=200), nullable=True),
        sa.Column("claim_generation", sa.BigInteger(), nullable=True),
        sa.Column("turn_id", sa.String(length=200), nullable=True),
        sa.Column("enqueued_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("enqueue_seq"),
        sa.UniqueConstraint("input_id"),
        sa.UniqueConstraint("session_id", "source_key", name="uq_lash_pending_inputs_source_key"),
    )
    with op.batch_alter_table("lash_pending_inputs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lash_pending_inputs_session_state",
            ["session_id", "state", "enqueue_seq"],
            unique=False,
        )

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

    op.create_table(
        "lash_queued_work",
        sa.Column(
            "enqueue_seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("source_key", sa.String(length=400), nullable=False),
        sa.Column("work_class", sa.String(length=32), nullable=False),
        sa.Column("slot_policy", sa.String(length=16), nullable=False),
        sa.Column("merge_key", sa.String(length=200), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("available_at", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.String(length=200), nullable=True),
        sa.Column("claim_token", sa.String(length=200), nullable=True),
        sa.Column("claim_generation", sa.BigInteger(), nullable=True),
        sa.Column("enqueued_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("enqueue_seq"),
        sa.UniqueConstraint("batch_id"),
        sa.UniqueConstraint("session_id", "source_key", name="uq_lash_queued_work_source_key"),
    )
    with op.batch_alter_table("lash_queued_work", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lash_queued_work_session_ready",
            ["session_id", "state", "enqueue_seq"],
            unique=False,
        )

    op.create_table(
        "lash_session_leases",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("owner_id", sa.String(length=200), nullable=True),
        sa.Column("incarnation_id", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=200), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "lash_sessions",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("head_revision", sa.BigInteger(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("leaf_node_id", sa.String(length=200), nullable=True),
        sa.Column("tool_state", sa.JSON(), nullable=True),
        sa.Column("tool_state_generation", sa.BigInteger(), nullable=True),
        sa.Column("plugin_snapshot", sa.JSON(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("graph_changed_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "lash_turn_commits",
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("turn_id", sa.String(length=200), nullable=False),
        sa.Column("turn_commit_hash", sa.String(length=64), nullable=False),
        sa.Column("head_revision", sa.BigInteger(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("committed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "turn_id"),
    )
    op.create_table(
        "lash_queued_work_items",
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["lash_queued_work.batch_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("batch_id", "item_index"),
    )


def downgrade() -> None:

    op.drop_table("lash_queued_work_items")
    op.drop_table("lash_turn_commits")
    op.drop_table("lash_sessions")
    op.drop_table("lash_session_leases")
    with op.batch_alter_table("lash_queued_work", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_queued_work_session_ready")

    op.drop_table("lash_queued_work")
    with op.batch_alter_table("lash_processes", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_processes_status")
        batch_op.drop_index("ix_lash_processes_session")

    op.drop_table("lash_processes")
    op.drop_table("lash_process_events")
    with op.batch_alter_table("lash_pending_inputs", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_pending_inputs_session_state")

    op.drop_table("lash_pending_inputs")
    op.drop_table("lash_maintenance_runs")
    with op.batch_alter_table("lash_graph_nodes", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_graph_nodes_session_seq")

    op.drop_table("lash_graph_nodes")
    with op.batch_alter_table("lash_effect_journal", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_effect_journal_session_turn")

    op.drop_table("lash_effect_journal")
    with op.batch_alter_table("lash_attachment_manifest", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_attachment_manifest_owner")
        batch_op.drop_index("ix_lash_attachment_manifest_attachment")

    op.drop_table("lash_attachment_manifest")
    op.drop_table("lash_active_turns")
