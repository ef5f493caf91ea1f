"""turn identity and database-clock node ages

- lash_sessions.turn_seq: a per-session turn counter that is never reset, folded into
  every turn id so that no id is reused for the life of a session.
- lash_pending_inputs: input ids are unique per session, not across all sessions.
- lash_graph_nodes.created_ms: when the node was committed, on the database clock.
  Rows written before this revision get the upgrade's time: an orphan that old is
  tombstoned one retention window after the upgrade, never earlier than it should be.
- ix_lash_sessions_graph_changed: keyset paging of changed sessions for the orphan job.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NOW_MS = {
    "postgresql": "(extract(epoch from clock_timestamp()) * 1000)::bigint",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
}


def _pending_inputs_0001() -> sa.Table:
    """lash_pending_inputs as 0001 made it, for SQLite's copy-and-move: its global
    UNIQUE (input_id) has no name to drop, so the copy is declared without it."""
    return sa.Table(
        "lash_pending_inputs",
        sa.MetaData(),
        sa.Column("enqueue_seq", sa.Integer(), nullable=False),
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
        sa.UniqueConstraint("session_id", "source_key", name="uq_lash_pending_inputs_source_key"),
        sa.Index("ix_lash_pending_inputs_session_state", "session_id", "state", "enqueue_seq"),
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    with op.batch_alter_table("lash_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("turn_seq", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.create_index(
            "ix_lash_sessions_graph_changed", ["graph_changed_at", "session_id"], unique=False
        )

    op.add_column("lash_graph_nodes", sa.Column("created_ms", sa.BigInteger(), nullable=True))
    op.execute(f"UPDATE lash_graph_nodes SET created_ms = {_NOW_MS[dialect]}")
    with op.batch_alter_table("lash_graph_nodes", schema=None) as batch_op:
        batch_op.alter_column("created_ms", existing_type=sa.BigInteger(), nullable=False)

    if dialect == "sqlite":
        with op.batch_alter_table(
            "lash_pending_inputs", recreate="always", copy_from=_pending_inputs_0001()
        ) as batch_op:
            batch_op.create_unique_constraint(
                "uq_lash_pending_inputs_input_id", ["session_id", "input_id"]
            )
    else:
        op.drop_constraint("lash_pending_inputs_input_id_key", "lash_pending_inputs")
        op.create_unique_constraint(
            "uq_lash_pending_inputs_input_id", "lash_pending_inputs", ["session_id", "input_id"]
        )


def downgrade() -> None:
    # Back to globally unique input ids: fails if two sessions now share one, which is
    # the honest outcome (0001 cannot represent that data).
    with op.batch_alter_table("lash_pending_inputs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_lash_pending_inputs_input_id", type_="unique")
        batch_op.create_unique_constraint("lash_pending_inputs_input_id_key", ["input_id"])
    with op.batch_alter_table("lash_graph_nodes", schema=None) as batch_op:
        batch_op.drop_column("created_ms")
    with op.batch_alter_table("lash_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_lash_sessions_graph_changed")
        batch_op.drop_column("turn_seq")
