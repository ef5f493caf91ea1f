"""Ingress operations shared by the Python client, the ingress tasks, the CLI and the gateway.

Each write takes its rows in one transaction; the caller pokes only after it returns.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from lash_tasks.errors import ValidationError
from lash_tasks.events.publisher import EventPublisher
from lash_tasks.events.sources import now_ms
from lash_tasks.events.vocabulary import InputCancelled
from lash_tasks.ingress.payloads import CancelInputPayload, CreateSessionPayload, EnqueueTurnPayload
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.settings import Settings
from lash_tasks.store.records import InputDraft, PendingInput, SessionRecord
from lash_tasks.store.store import Store

log = logging.getLogger(__name__)
# A cancel's event is worth a short wait (a waiter may be blocked on it), never a long one.
_CANCEL_EVENT_FLUSH_S = 0.25


def create_session(
    store: Store, payload: CreateSessionPayload, settings: Settings
) -> SessionRecord:
    policy = SessionPolicy(
        provider=payload.provider or settings.provider,
        model=ModelSpec(id=payload.model or settings.model),
        system_prompt=payload.system_prompt,
        max_turns=payload.max_turns or 16,
        residency=payload.residency or "active_path_only",
    )
    return store.sessions.create(payload.session_id, policy)


def enqueue_turn(store: Store, payload: EnqueueTurnPayload) -> PendingInput:
    body: dict[str, Any] = {"text": payload.text}
    if payload.branch_from:
        body["branch_from"] = payload.branch_from
    if payload.attachments:
        body["attachments"] = list(payload.attachments)
    source_key = payload.source_key or f"host:{payload.input_id or uuid.uuid4().hex}"
    return store.inputs.enqueue(
        InputDraft(
            session_id=payload.session_id,
            source_key=source_key,
            input=body,
            ingress="active_turn" if payload.steer else "next_turn",
            input_id=payload.input_id,
        )
    )


def enqueue_and_poke(
    store: Store, payload: EnqueueTurnPayload, poke: Callable[[str], None]
) -> PendingInput:
    """Record the input durably, then poke a worker."""
    row = enqueue_turn(store, payload)
    try:
        poke(payload.session_id)
    except Exception as exc:
        # The input is durable; the sweeper will poke it. Failing here would invite the
        # caller to submit it again.
        log.warning(
            "input %s stored, but the poke failed (%s); the sweeper will pick it up",
            row.input_id,
            type(exc).__name__,
        )
    return row


def cancel_input(
    store: Store, payload: CancelInputPayload, events: EventPublisher | None = None
) -> dict[str, Any]:
    if payload.input_id is None and payload.source_key is None and not payload.interrupt:
        raise ValidationError("cancel_input needs an input_id, a source_key or interrupt=true")
    result: dict[str, Any] = {"session_id": payload.session_id}
    if payload.input_id is not None or payload.source_key is not None:
        outcome = store.inputs.cancel(
            payload.session_id, input_id=payload.input_id, source_key=payload.source_key
        )
        result["outcome"] = outcome.value
        if outcome.value == "cancelled" and events is not None:
            input_id = payload.input_id or _input_id_of(store, payload)
            if input_id is not None:
                events.publish(
                    InputCancelled(session_id=payload.session_id, input_id=input_id, at_ms=now_ms())
                )
                events.flush(_CANCEL_EVENT_FLUSH_S)
    if payload.interrupt:
        result["interrupt_requested"] = store.turns.request_cancel(payload.session_id)
    return result


def _input_id_of(store: Store, payload: CancelInputPayload) -> str | None:
    for row in store.inputs.list_all(payload.session_id):
        if row.source_key == payload.source_key:
            return row.input_id
    return None


def session_view(store: Store, session_id: str) -> dict[str, Any]:
    """What a session looks like now: revision, model, usage, active turn, pending inputs,
    lease and the active path's transcript."""
    loaded = store.sessions.load(session_id)
    owner, fencing, expires = store.leases.state(session_id)
    transcript = [
        {"node_id": n.node_id, "kind": n.kind, **dict(n.payload)}
        for n in loaded.graph.active_path()
    ]
    return {
        "session_id": session_id,
        "head_revision": loaded.record.head_revision,
        "model": loaded.record.policy.model.id if loaded.record.policy else None,
        "usage": loaded.record.usage.to_json(),
        "active_turn": loaded.active_turn.turn_id if loaded.active_turn else None,
        "pending_inputs": [i.input_id for i in store.inputs.list_pending(session_id)],
        "lease": {"owner": owner, "fencing_token": fencing, "expires_at": expires},
        "parent_session_id": loaded.record.parent_session_id,
        "processes": [
            {
                "process_id": p.process_id,
                "kind": p.kind,
                "status": p.status.value,
                "disposition": p.disposition.value,
            }
            for p in store.processes.for_session(session_id)
        ],
        "children": [c.session_id for c in store.sessions.children(session_id)],
        "transcript": transcript,
    }


def session_tree(store: Store, session_id: str, depth: int = 0, limit: int = 8) -> list[str]:
    """The session and its subagents' child sessions, indented by generation."""
    lines = ["  " * depth + session_id]
    if depth < limit:
        for child in store.sessions.children(session_id):
            lines.extend(session_tree(store, child.session_id, depth + 1, limit))
    return lines
