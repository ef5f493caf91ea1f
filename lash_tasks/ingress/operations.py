"""Ingress operations shared by the Python client, the ingress tasks, the CLI and the gateway.

Each write takes its rows in one transaction; the caller pokes only after it returns.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from lash_tasks.errors import UnknownLlmProvider, UnknownTool, ValidationError
from lash_tasks.events.publisher import EventPublisher
from lash_tasks.events.sources import now_ms
from lash_tasks.events.vocabulary import InputCancelled
from lash_tasks.ingress.payloads import CancelInputPayload, CreateSessionPayload, EnqueueTurnPayload
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.settings import Settings
from lash_tasks.store.records import InputDraft, PendingInput, SessionRecord
from lash_tasks.store.store import Store
from lash_tasks.tools.loading import registry_from_env
from lash_tasks.views import CancelResult

log = logging.getLogger(__name__)
# A cancel's event is worth a short wait (a waiter may be blocked on it), never a long one.
_CANCEL_EVENT_FLUSH_S = 0.25


def create_session(
    store: Store, payload: CreateSessionPayload, settings: Settings
) -> SessionRecord:
    """Create the session with its LLM provider, model and tools, each checked against what
    `settings` knows (typed errors naming the field; nothing written)."""
    provider = payload.provider or settings.provider
    if provider not in settings.provider_names:
        raise UnknownLlmProvider(
            f"provider: {provider!r} is not one of: {', '.join(settings.provider_names)}",
            field="provider",
            allowed=list(settings.provider_names),
        )
    if payload.tools is not None:
        _check_tools(payload.tools, settings)
    policy = SessionPolicy(
        provider=provider,
        model=ModelSpec(id=payload.model or settings.model),
        system_prompt=payload.system_prompt,
        max_turns=payload.max_turns or 16,
        residency=payload.residency or "active_path_only",
        tools=payload.tools,
    )
    return store.sessions.create(payload.session_id, policy)


def _check_tools(names: tuple[str, ...], settings: Settings) -> None:
    """Every name must be a tool registered from LASH_TOOLS (and the built-ins) here: the
    same variable the workers load their tools from."""
    known = registry_from_env(settings.env).tool_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownTool(
            f"tools: unknown tool {unknown[0]!r}; registered: {', '.join(known)}",
            field="tools",
            unknown=unknown,
        )


def enqueue_turn(store: Store, payload: EnqueueTurnPayload) -> PendingInput:
    body: dict[str, Any] = {"text": payload.text}
    if payload.branch_from:
        body["branch_from"] = payload.branch_from
    if payload.attachments:
        body["attachments"] = list(payload.attachments)
    if payload.reply_to is not None:
        body["reply_to"] = payload.reply_to.model_dump()
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
) -> CancelResult:
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
    return CancelResult.model_validate(result)


def _input_id_of(store: Store, payload: CancelInputPayload) -> str | None:
    for row in store.inputs.list_all(payload.session_id):
        if row.source_key == payload.source_key:
            return row.input_id
    return None
