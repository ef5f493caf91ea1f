"""Tables of the one lash-tasks database. Every row is keyed by session_id.

Times are epoch milliseconds taken from the database clock, so that leases
compare against one clock however many worker machines there are.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

sessions = Table(
    "lash_sessions",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("head_revision", BigInteger, nullable=False),
    Column("config", JSON, nullable=False),
    Column("leaf_node_id", String(200)),
    Column("tool_state", JSON),
    Column("tool_state_generation", BigInteger),
    Column("plugin_snapshot", JSON),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("graph_changed_at", BigInteger, nullable=False),
    # Bumped by every turn that begins and never reset: part of each turn's id, so no id
    # is reused for the life of the session, whatever vacuum deleted.
    Column("turn_seq", BigInteger, nullable=False, server_default=text("0")),
    # A subagent's child session names its parent session and the process its turn serves.
    Column("parent_session_id", String(200)),
    Column("parent_process_id", String(200)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_lash_sessions_graph_changed", "graph_changed_at", "session_id"),
    Index("ix_lash_sessions_parent", "parent_session_id"),
)

graph_nodes = Table(
    "lash_graph_nodes",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("node_id", String(200), primary_key=True),
    Column("parent_node_id", String(200)),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", String(64), nullable=False),
    # When the commit wrote the node, on the database clock: orphan retention compares
    # this, never the writer's own (possibly skewed) `created_at`.
    Column("created_ms", BigInteger, nullable=False),
    Column("tombstoned_at", BigInteger),
    Index("ix_lash_graph_nodes_session_seq", "session_id", "seq"),
)

turn_commits = Table(
    "lash_turn_commits",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("turn_id", String(200), primary_key=True),
    Column("turn_commit_hash", String(64), nullable=False),
    Column("head_revision", BigInteger, nullable=False),
    Column("result", JSON, nullable=False),
    Column("committed_at", BigInteger, nullable=False),
)

session_leases = Table(
    "lash_session_leases",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("owner_id", String(200)),
    Column("incarnation_id", String(200)),
    Column("lease_token", String(200)),
    Column("fencing_token", BigInteger, nullable=False),
    Column("claimed_at", BigInteger),
    Column("expires_at", BigInteger),
)

pending_inputs = Table(
    "lash_pending_inputs",
    metadata,
    Column("enqueue_seq", AutoId, primary_key=True, autoincrement=True),
    Column("input_id", String(200), nullable=False),
    Column("session_id", String(200), nullable=False),
    Column("source_key", String(400), nullable=False),
    Column("ingress", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("input", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("claim_id", String(200)),
    Column("claim_token", String(200)),
    Column("claim_generation", BigInteger),
    Column("turn_id", String(200)),
    Column("enqueued_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("session_id", "source_key", name="uq_lash_pending_inputs_source_key"),
    UniqueConstraint("session_id", "input_id", name="uq_lash_pending_inputs_input_id"),
    Index("ix_lash_pending_inputs_session_state", "session_id", "state", "enqueue_seq"),
)

queued_work = Table(
    "lash_queued_work",
    metadata,
    Column("enqueue_seq", AutoId, primary_key=True, autoincrement=True),
    Column("batch_id", String(200), nullable=False, unique=True),
    Column("session_id", String(200), nullable=False),
    Column("source_key", String(400), nullable=False),
    Column("work_class", String(32), nullable=False),
    Column("slot_policy", String(16), nullable=False),
    Column("merge_key", String(200)),
    Column("content_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("available_at", BigInteger, nullable=False),
    Column("claim_id", String(200)),
    Column("claim_token", String(200)),
    Column("claim_generation", BigInteger),
    Column("enqueued_at", BigInteger, nullable=False),
    # `after_current_turn` starts a turn of its own; `earliest_safe_boundary` may also join
    # a running turn at its next step (then `turn_id` names the turn that accepted it).
    Column(
        "delivery_policy",
        String(32),
        nullable=False,
        server_default=text("'after_current_turn'"),
    ),
    Column("turn_id", String(200)),
    UniqueConstraint("session_id", "source_key", name="uq_lash_queued_work_source_key"),
    Index("ix_lash_queued_work_session_ready", "session_id", "state", "enqueue_seq"),
)

queued_work_items = Table(
    "lash_queued_work_items",
    metadata,
    Column("batch_id", String(200), primary_key=True),
    Column("item_index", Integer, primary_key=True),
    Column("payload", JSON, nullable=False),
    ForeignKeyConstraint(["batch_id"], ["lash_queued_work.batch_id"], ondelete="CASCADE"),
)

active_turns = Table(
    "lash_active_turns",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("turn_id", String(200), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("input_claim_id", String(200)),
    Column("queue_claim_id", String(200)),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("state", JSON, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    # Starts of the current step since the turn's last commit, and the last failure seen:
    # a step that keeps failing ends its turn instead of being re-poked for ever.
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", JSON),
)

effect_journal = Table(
    "lash_effect_journal",
    metadata,
    Column("scope_id", String(200), primary_key=True),
    Column("replay_key", String(600), primary_key=True),
    Column("session_id", String(200), nullable=False),
    Column("turn_id", String(200)),
    Column("envelope_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("outcome", JSON),
    Column("error", JSON),
    Column("lease_owner", String(200)),
    Column("lease_token", String(200)),
    Column("lease_expires_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("lease_incarnation_id", String(200)),
    Index("ix_lash_effect_journal_session_turn", "session_id", "turn_id"),
)

attachment_manifest = Table(
    "lash_attachment_manifest",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("attachment_id", String(64), primary_key=True),
    Column("uri", String(400), nullable=False),
    Column("intent_at", BigInteger, nullable=False),
    Column("committed_at", BigInteger),
    Column("owner_kind", String(16)),
    Column("owner_id", String(200)),
    Column("media_type", String(255)),
    Index("ix_lash_attachment_manifest_attachment", "attachment_id"),
    Index("ix_lash_attachment_manifest_owner", "session_id", "owner_kind", "owner_id"),
)

# A process is durable background work (DESIGN §6). `session_id` is the session that started
# it and `wake_session_id` the one its completion wakes; both are cleared when that session is
# deleted (the process lives on, reported as orphaned, never cancelled silently).
processes = Table(
    "lash_processes",
    metadata,
    Column("process_id", String(200), primary_key=True),
    Column("session_id", String(200)),
    Column("wake_session_id", String(200)),
    Column("kind", String(64), nullable=False),
    Column("disposition", String(32), nullable=False),
    Column("registration_hash", String(64), nullable=False),
    Column("registration", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", JSON),
    Column("lease_owner", String(200)),
    Column("lease_incarnation_id", String(200)),
    Column("lease_token", String(200)),
    # Never goes down, survives release: like the session lease's.
    Column("fencing_token", BigInteger, nullable=False),
    Column("lease_claimed_at", BigInteger),
    Column("lease_expires_at", BigInteger),
    Column("first_started_at", BigInteger),
    # Position in the change feed (`processes_changed_since`): bumped by every write.
    Column("change_seq", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_lash_processes_status", "status"),
    Index("ix_lash_processes_session", "session_id"),
    Index("ix_lash_processes_wake_session", "wake_session_id"),
    Index("ix_lash_processes_change_seq", "change_seq"),
)

# One row: the last change_seq handed out. Its row lock orders writers, so the feed's
# sequence is also commit order and a reader's cursor never skips a late commit.
process_change_clock = Table(
    "lash_process_change_clock",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("current_seq", BigInteger, nullable=False),
)

process_events = Table(
    "lash_process_events",
    metadata,
    Column("process_id", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("event_type", String(32), nullable=False),
    Column("idempotency_key", String(400)),
    Column("payload_hash", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    UniqueConstraint("process_id", "idempotency_key", name="uq_lash_process_events_key"),
)

# Which sessions may see a process (its handle). Deleting a session revokes its grants; a
# running process left with none is orphaned.
process_grants = Table(
    "lash_process_grants",
    metadata,
    Column("process_id", String(200), primary_key=True),
    Column("session_id", String(200), primary_key=True),
    Column("granted_at", BigInteger, nullable=False),
    Index("ix_lash_process_grants_session", "session_id"),
)

maintenance_runs = Table(
    "lash_maintenance_runs",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("slot", String(64), primary_key=True),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("report", JSON),
)

# One row per worker process incarnation: a lease whose holder's row has expired belongs to
# a provably dead process and is taken over at once instead of after its ttl.
worker_heartbeats = Table(
    "lash_worker_heartbeats",
    metadata,
    Column("incarnation_id", String(200), primary_key=True),
    Column("owner_id", String(200), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("reaped_at", BigInteger),
    Column("liveness", JSON),
    Index("ix_lash_worker_heartbeats_owner", "owner_id"),
)

# Committed events for readers when there is no Redis (written by the step's commit).
session_events = Table(
    "lash_session_events",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("event", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_lash_session_events_created", "created_at"),
)

# The outcomes of turns whose inputs asked for a reply (`reply_to`): written by the turn's
# final commit, published after it by the worker, republished by the sweeper until sent.
reply_outbox = Table(
    "lash_reply_outbox",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("idempotency_key", String(600), primary_key=True),
    Column("task_name", String(200), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Index("ix_lash_reply_outbox_unsent", "sent_at", "created_at"),
)

SESSION_TABLES = (
    reply_outbox,
    session_events,
    attachment_manifest,
    effect_journal,
    active_turns,
    queued_work,
    pending_inputs,
    session_leases,
    turn_commits,
    graph_nodes,
    sessions,
)
