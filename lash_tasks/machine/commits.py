"""Commit drafts: what one fenced store transaction must apply, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lash_tasks.machine.graph import Node
from lash_tasks.machine.turn_state import TurnState


@dataclass(frozen=True)
class Fence:
    """Proof of holding a session lease: all four must still match at commit time."""

    session_id: str
    owner_id: str
    lease_token: str
    fencing_token: int


@dataclass(frozen=True)
class GraphUnchanged:
    leaf_node_id: str | None
    kind: Literal["unchanged"] = "unchanged"


@dataclass(frozen=True)
class GraphAppend:
    nodes: tuple[Node, ...]
    leaf_node_id: str | None
    kind: Literal["append"] = "append"


@dataclass(frozen=True)
class GraphReplaceFull:
    nodes: tuple[Node, ...]
    leaf_node_id: str | None
    kind: Literal["replace_full"] = "replace_full"


GraphDelta = GraphUnchanged | GraphAppend | GraphReplaceFull


@dataclass(frozen=True)
class ClaimCompletion:
    """Settles a claim: the rows claimed under `claim_id`/`claim_token` become completed."""

    claim_id: str
    claim_token: str


@dataclass(frozen=True)
class TurnStamp:
    """Marks a final commit. The same turn id with the same hash is a replay, not a new commit."""

    turn_id: str
    turn_commit_hash: str
    result: dict[str, Any]


@dataclass(frozen=True)
class QueuedWorkDraft:
    """One batch of queued work to enqueue (directly, or as a commit's outbox row)."""

    source_key: str
    work_class: Literal["session_command", "turn_work"]
    payloads: tuple[dict[str, Any], ...]
    slot_policy: Literal["exclusive", "join"] = "exclusive"
    merge_key: str | None = None
    delay_ms: int = 0
    # `earliest_safe_boundary`: a running turn may take it at its next step (a process's
    # result reaching the turn that waits for it); else it starts a turn of its own.
    delivery_policy: Literal["after_current_turn", "earliest_safe_boundary"] = "after_current_turn"


@dataclass(frozen=True)
class OutboxReply:
    """A turn's outcome for a caller that asked for it (`reply_to`): written in the turn's
    final commit, published after it, at least once. `idempotency_key` is the same on every
    publication of it, so the receiver can drop repeats."""

    session_id: str
    idempotency_key: str
    task: str
    queue: str
    body: dict[str, Any]


@dataclass(frozen=True)
class KeepActiveTurn:
    """Leave the active-turn row as it is."""


@dataclass(frozen=True)
class ClearActiveTurn:
    """Remove the active-turn row (the turn ended)."""


ActiveTurnChange = TurnState | KeepActiveTurn | ClearActiveTurn


@dataclass(frozen=True)
class SessionSnapshot:
    """Session-level state written with a commit (tool surface, plugins, usage)."""

    tool_state: dict[str, Any] | None = None
    tool_state_generation: int | None = None
    plugin_snapshot: dict[str, Any] | None = None
    usage_delta: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class CommitDraft:
    """Everything one commit applies, atomically, or nothing."""

    session_id: str
    expected_head_revision: int
    fence: Fence | None
    graph: GraphDelta
    active_turn: ActiveTurnChange = KeepActiveTurn()
    snapshot: SessionSnapshot = SessionSnapshot()
    input_completions: tuple[ClaimCompletion, ...] = ()
    queue_completions: tuple[ClaimCompletion, ...] = ()
    carries_claimed_content: bool = False
    turn_stamp: TurnStamp | None = None
    defer_active_inputs: bool = False
    # Steer inputs the turn accepted but never got an answer to (it was interrupted before
    # its LLM call returned): back to pending, for the next turn.
    returned_input_ids: tuple[str, ...] = ()
    # Queued batches the turn took at a step boundary but never showed the model: ready
    # again, for the next turn.
    returned_batch_ids: tuple[str, ...] = ()
    committed_attachment_ids: tuple[str, ...] = ()
    outbox: tuple[QueuedWorkDraft, ...] = ()
    # Replies to callers that asked for the turn's outcome (final commits only).
    replies: tuple[OutboxReply, ...] = ()
    release_lease: bool = False
    # Committed session events (their JSON records) for the database event log, used when
    # there is no Redis. Not part of the commit hash: each attempt has its own attempt id,
    # and a replayed final commit must still match the first.
    events: tuple[dict[str, Any], ...] = ()

    def hashable_content(self) -> dict[str, Any]:
        """The commit's meaningful content, for `turn_commit_hash` (no fence, no revision)."""
        graph_nodes = [] if isinstance(self.graph, GraphUnchanged) else list(self.graph.nodes)
        content: dict[str, Any] = {
            "session_id": self.session_id,
            "graph_kind": self.graph.kind,
            "nodes": [n.to_json() for n in graph_nodes],
            "outbox": [
                {"source_key": d.source_key, "class": d.work_class, "payloads": list(d.payloads)}
                for d in self.outbox
            ],
            "attachments": sorted(self.committed_attachment_ids),
        }
        if self.returned_input_ids:  # only when present: other turns keep their hashes
            content["returned_inputs"] = sorted(self.returned_input_ids)
        if self.returned_batch_ids:
            content["returned_batches"] = sorted(self.returned_batch_ids)
        return content


@dataclass(frozen=True)
class CommitResult:
    head_revision: int
    replayed: bool = False
    turn_result: dict[str, Any] | None = None
