"""Values the store hands out and takes in (besides the machine's commit drafts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from lash_tasks.machine import Fence, SessionGraph, SessionPolicy, TurnState, Usage


@dataclass(frozen=True)
class FullGraph:
    kind: Literal["full_graph"] = "full_graph"


@dataclass(frozen=True)
class ActivePath:
    """Only leaf → root. `leaf=None` uses the persisted leaf."""

    leaf: str | None = None
    kind: Literal["active_path"] = "active_path"


ReadScope = FullGraph | ActivePath


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    head_revision: int
    policy: SessionPolicy | None
    leaf_node_id: str | None
    tool_state: dict[str, Any] | None
    tool_state_generation: int | None
    plugin_snapshot: dict[str, Any] | None
    usage: Usage
    created_at: int
    updated_at: int
    # A subagent's child session: its parent session and the process its turn serves.
    parent_session_id: str | None = None
    parent_process_id: str | None = None


@dataclass(frozen=True)
class SessionDeleteReport:
    """What `delete_session` did. `existed=False` for an unknown session (a no-op).
    `orphaned_process_ids` are running processes left with no session holding them: they
    run on, never cancelled silently."""

    session_id: str
    existed: bool
    orphaned_process_ids: tuple[str, ...] = ()
    revoked_grants: int = 0
    cleared_wakes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "deleted": self.existed,
            "orphaned_process_ids": list(self.orphaned_process_ids),
            "revoked_grants": self.revoked_grants,
            "cleared_wakes": self.cleared_wakes,
        }


@dataclass
class LoadedSession:
    record: SessionRecord
    graph: SessionGraph
    active_turn: TurnState | None
    scope: ReadScope


@dataclass(frozen=True)
class Lease:
    session_id: str
    owner_id: str
    incarnation_id: str
    lease_token: str
    fencing_token: int
    claimed_at: int
    expires_at: int

    @property
    def fence(self) -> Fence:
        return Fence(self.session_id, self.owner_id, self.lease_token, self.fencing_token)


@dataclass(frozen=True)
class Busy:
    """Another owner holds a live lease. `retry_after_ms` is when it would expire."""

    session_id: str
    holder_owner_id: str
    expires_at: int
    retry_after_ms: int


class InputState(StrEnum):
    PENDING = "pending"
    PENDING_ACTIVE = "pending_active"
    CLAIMED = "claimed"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


TERMINAL_INPUT_STATES = (InputState.COMPLETED, InputState.CANCELLED)


@dataclass(frozen=True)
class InputDraft:
    session_id: str
    source_key: str
    input: dict[str, Any]
    ingress: Literal["next_turn", "active_turn"] = "next_turn"
    input_id: str | None = None


@dataclass(frozen=True)
class PendingInput:
    input_id: str
    session_id: str
    enqueue_seq: int
    source_key: str
    ingress: str
    state: str
    input: dict[str, Any]
    claim_id: str | None
    turn_id: str | None
    enqueued_at: int
    updated_at: int


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"
    ALREADY_CLAIMED = "already_claimed"
    ALREADY_COMPLETED = "already_completed"
    ALREADY_CANCELLED = "already_cancelled"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class InputClaim:
    claim_id: str
    claim_token: str
    generation: int
    inputs: tuple[PendingInput, ...]


@dataclass(frozen=True)
class QueuedBatch:
    batch_id: str
    session_id: str
    enqueue_seq: int
    source_key: str
    work_class: str
    slot_policy: str
    merge_key: str | None
    state: str
    payloads: tuple[dict[str, Any], ...]
    available_at: int


@dataclass(frozen=True)
class QueueClaim:
    claim_id: str
    claim_token: str
    generation: int
    batches: tuple[QueuedBatch, ...]


@dataclass(frozen=True)
class VacuumReport:
    removed_nodes: int = 0
    removed_inputs: int = 0
    removed_queued_work: int = 0
    removed_journal_rows: int = 0
    removed_events: int = 0
    removed_replies: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "removed_nodes": self.removed_nodes,
            "removed_inputs": self.removed_inputs,
            "removed_queued_work": self.removed_queued_work,
            "removed_journal_rows": self.removed_journal_rows,
            "removed_events": self.removed_events,
            "removed_replies": self.removed_replies,
        }


SessionActivity = Literal["running", "waiting", "idle"]


@dataclass(frozen=True)
class SessionSummary:
    """One line of a session list: `running` (a turn is active), `waiting` (inputs pending,
    no turn yet) or `idle`."""

    session_id: str
    head_revision: int
    provider: str | None
    model: str | None
    activity: SessionActivity
    pending_inputs: int
    updated_at: int


@dataclass(frozen=True)
class RunnableSession:
    """What the sweeper found: a session with work and no live lease."""

    session_id: str
    reasons: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ExecuteEffect:
    """No usable record: the caller must execute, then finalize with this lease token."""

    lease_token: str
    took_over: bool = False


@dataclass(frozen=True)
class RecordedEffect:
    """A finished record: replay its outcome (or error) instead of executing."""

    status: Literal["completed", "failed"]
    outcome: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class StepAttempt:
    """The attempt a step is making (1 = first) and the last failure recorded before it."""

    number: int
    last_error: dict[str, Any] | None = None
