"""What the step's transactions take and give back (see `step_transactions.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lash_tasks.machine import (
    CommitDraft,
    CommitResult,
    OutboxReply,
    SessionGraph,
    SessionPolicy,
    TurnState,
)
from lash_tasks.store.records import (
    ExecuteEffect,
    Lease,
    PendingInput,
    QueueClaim,
    QueuedBatch,
    RecordedEffect,
    SessionRecord,
)


@dataclass(frozen=True)
class EffectSlot:
    """One effect to prepare: where its record lives and what it will do (hashed)."""

    scope_id: str
    replay_key: str
    session_id: str
    turn_id: str | None
    envelope_hash: str


@dataclass(frozen=True)
class EffectOutcome:
    """What an executed effect came to, for the record: `outcome`, or `error` if it failed."""

    scope_id: str
    replay_key: str
    lease_token: str
    outcome: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class EffectHolder:
    """Who executes the step's effects: the effect leases are taken in this name."""

    owner: str
    incarnation_id: str | None
    ttl_ms: int


@dataclass(frozen=True)
class OpenRequest:
    """Open a step of `session_id` for this worker.

    `cached_revision` is the head revision of the graph the worker holds in its rebuild
    cache: when the session is still there, the active path is not read again.
    `default_policy` fills a session created without one. `effects` is None when the core's
    effect host keeps no journal (the inline host).
    """

    session_id: str
    owner_id: str
    incarnation_id: str
    ttl_ms: int
    cached_revision: int | None = None
    default_policy: SessionPolicy | None = None
    effects: EffectHolder | None = None


StepWork = Literal["turn", "command", "idle"]
JournalDecision = ExecuteEffect | RecordedEffect


@dataclass
class OpenedStep:
    """What the open transaction found and took.

    `graph` is None when the cached revision still holds. For a turn, `steer` lists every
    steer input the turn accepted so far (in order) and `accepted_now` those this open took;
    `wakes` and `wakes_accepted_now` likewise the queued batches it took at step boundaries.
    `first_effect` is the journal's decision on the effect the planner named (None: no
    journal, or the step stops before calling); `mismatch` is set instead when the journal
    holds that effect with another envelope. `branch_missing` names a branch point that is
    gone.
    """

    lease: Lease
    record: SessionRecord
    graph: SessionGraph | None
    work: StepWork
    turn: TurnState | None = None
    new_turn: bool = False
    steer: tuple[PendingInput, ...] = ()
    accepted_now: tuple[str, ...] = ()
    wakes: tuple[QueuedBatch, ...] = ()
    wakes_accepted_now: tuple[str, ...] = ()
    command: QueueClaim | None = None
    first_effect: JournalDecision | None = None
    mismatch: dict[str, Any] | None = None
    branch_missing: str | None = None
    healed_from_full_graph: bool = False


# Called inside the open transaction, once the step's turn is known: builds the step's first
# effect (pure work, no I/O) and names it, or returns None when the step will not call.
Planner = Callable[[OpenedStep], EffectSlot | None]


@dataclass(frozen=True)
class CloseRequest:
    """The step's commit, the effect outcomes it still holds, and whether to keep the lease
    (the worker continues with the session's next step at once)."""

    draft: CommitDraft
    outcomes: tuple[EffectOutcome, ...] = ()
    keep_lease: bool = False


@dataclass(frozen=True)
class ClosedStep:
    """The commit's result; whether more work waits for the session; whether the lease was
    kept for the worker to go on with it (else the transaction released it); the replies the
    commit wrote to its outbox, for the worker to publish now."""

    result: CommitResult
    more_work: bool = False
    lease_kept: bool = False
    replies: tuple[OutboxReply, ...] = ()
