"""Row decoding and encoding shared by the store parts: stored rows in, store records out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from lash_tasks.errors import InvalidModelSpec, SchemaVersionError
from lash_tasks.machine import (
    ClaimRef,
    Message,
    Node,
    ReplyRoute,
    SessionPolicy,
    TurnState,
    Usage,
    parse_policy,
)
from lash_tasks.store.records import PendingInput, QueuedBatch, SessionRecord

NODE_SCHEMA_VERSION = 1
_NODE_PAYLOAD_KEYS = {
    "message": {"role", "text", "tool_calls", "tool_call_id", "name", "is_error", "attachments"},
}


def encode_node_payload(node: Node) -> dict[str, Any]:
    return {"schema_version": NODE_SCHEMA_VERSION, **dict(node.payload)}


def decode_node(row: Row[Any]) -> Node:
    payload = dict(row.payload)
    version = payload.pop("schema_version", None)
    if version != NODE_SCHEMA_VERSION:
        raise SchemaVersionError(
            f"graph node {row.node_id!r} has schema_version {version!r}; "
            f"this build reads version {NODE_SCHEMA_VERSION}"
        )
    allowed = _NODE_PAYLOAD_KEYS.get(row.kind)
    if allowed is not None and not set(payload) <= allowed:
        unknown = sorted(set(payload) - allowed)
        raise SchemaVersionError(
            f"graph node {row.node_id!r} has unknown fields {unknown} for schema_version "
            f"{NODE_SCHEMA_VERSION}"
        )
    return Node(row.node_id, row.parent_node_id, row.kind, payload, row.created_at)


def decode_policy(row: Row[Any]) -> SessionPolicy | None:
    """The persisted policy, or None for a session created without one (the opener fills
    it). Any shape this build does not know is a `SchemaVersionError` (a stored model spec
    with unknown fields is corrupt data, not a caller's bad input)."""
    if row.config == {}:
        return None
    try:
        return parse_policy(row.config)
    except InvalidModelSpec as exc:
        raise SchemaVersionError(
            f"session {row.session_id!r} has a stored config that does not match schema v1: "
            f"{exc.message}"
        ) from None


def decode_session(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        session_id=row.session_id,
        head_revision=row.head_revision,
        policy=decode_policy(row),
        leaf_node_id=row.leaf_node_id,
        tool_state=row.tool_state,
        tool_state_generation=row.tool_state_generation,
        plugin_snapshot=row.plugin_snapshot,
        usage=Usage(row.input_tokens, row.output_tokens),
        created_at=row.created_at,
        updated_at=row.updated_at,
        parent_session_id=row.parent_session_id,
        parent_process_id=row.parent_process_id,
    )


TURN_STATE_VERSION = 1


def encode_turn_state(turn: TurnState) -> dict[str, Any]:
    """The JSON a turn keeps in `lash_active_turns.state` beside its columns."""
    return {
        "schema_version": TURN_STATE_VERSION,
        "input_claim_token": turn.input_claim.claim_token if turn.input_claim else None,
        "queue_claim_token": turn.queue_claim.claim_token if turn.queue_claim else None,
        "input_ids": list(turn.input_ids),
        "batch_ids": list(turn.batch_ids),
        "opening": [m.to_json() for m in turn.opening],
        "branch_from": turn.branch_from,
        "replies": [r.to_json() for r in turn.replies],
    }


def turn_state_columns(turn: TurnState) -> dict[str, Any]:
    """Every column of an active-turn row but the session id, cancel flag and start time."""
    return {
        "turn_id": turn.turn_id,
        "step_index": turn.step_index,
        "input_claim_id": turn.input_claim.claim_id if turn.input_claim else None,
        "queue_claim_id": turn.queue_claim.claim_id if turn.queue_claim else None,
        "state": encode_turn_state(turn),
        "attempts": turn.attempts,
        "last_error": turn.last_error,
    }


def decode_active_turn(row: Row[Any] | None) -> TurnState | None:
    """The active turn of a `lash_active_turns` row (None: no turn is running)."""
    if row is None:
        return None
    state = dict(row.state or {})
    version = state.get("schema_version", TURN_STATE_VERSION)
    if version != TURN_STATE_VERSION:
        raise SchemaVersionError(
            f"active turn {row.turn_id!r} has state schema_version {version!r}; "
            f"this build reads version {TURN_STATE_VERSION}"
        )
    return TurnState(
        turn_id=row.turn_id,
        step_index=int(row.step_index),
        input_claim=_claim(row.input_claim_id, state.get("input_claim_token")),
        queue_claim=_claim(row.queue_claim_id, state.get("queue_claim_token")),
        input_ids=tuple(state.get("input_ids", ())),
        batch_ids=tuple(state.get("batch_ids", ())),
        opening=tuple(Message.from_json(m) for m in state.get("opening", ())),
        branch_from=state.get("branch_from"),
        cancel_requested=bool(row.cancel_requested),
        attempts=int(row.attempts or 0),
        last_error=row.last_error,
        replies=tuple(ReplyRoute.from_json(r) for r in state.get("replies", ())),
    )


def _claim(claim_id: str | None, token: str | None) -> ClaimRef | None:
    return None if claim_id is None else ClaimRef(claim_id, token or "")


def decode_input(row: Row[Any]) -> PendingInput:
    return PendingInput(
        input_id=row.input_id,
        session_id=row.session_id,
        enqueue_seq=row.enqueue_seq,
        source_key=row.source_key,
        ingress=row.ingress,
        state=row.state,
        input=dict(row.input),
        claim_id=row.claim_id,
        turn_id=row.turn_id,
        enqueued_at=row.enqueued_at,
        updated_at=row.updated_at,
    )


def decode_batch(row: Row[Any], payloads: list[dict[str, Any]]) -> QueuedBatch:
    return QueuedBatch(
        batch_id=row.batch_id,
        session_id=row.session_id,
        enqueue_seq=row.enqueue_seq,
        source_key=row.source_key,
        work_class=row.work_class,
        slot_policy=row.slot_policy,
        merge_key=row.merge_key,
        state=row.state,
        payloads=tuple(payloads),
        available_at=row.available_at,
    )
