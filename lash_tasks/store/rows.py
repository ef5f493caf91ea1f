"""Row decoding and encoding shared by the store parts: stored rows in, store records out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from lash_tasks.errors import InvalidModelSpec, SchemaVersionError
from lash_tasks.machine import ActiveTurn, Node, SessionPolicy, Usage, parse_policy
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
    )


def decode_active_turn(row: Row[Any] | None) -> ActiveTurn | None:
    if row is None:
        return None
    return ActiveTurn(
        turn_id=row.turn_id,
        step_index=row.step_index,
        input_claim_id=row.input_claim_id,
        queue_claim_id=row.queue_claim_id,
        cancel_requested=bool(row.cancel_requested),
        state=dict(row.state or {}),
    )


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
