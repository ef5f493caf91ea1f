"""Ingress operations shared by the Python client, the ingress tasks and the CLI.

Each writes its rows in one transaction; the caller pokes only after it returns.
"""

from __future__ import annotations

import uuid
from typing import Any

from lash_tasks.ingress import CancelInputPayload, CreateSessionPayload, EnqueueTurnPayload
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.settings import Settings
from lash_tasks.store.records import InputDraft, PendingInput, SessionRecord
from lash_tasks.store.sql_store import SqlStore


def create_session(
    store: SqlStore, payload: CreateSessionPayload, settings: Settings
) -> SessionRecord:
    policy = SessionPolicy(
        provider=payload.provider or settings.provider,
        model=ModelSpec(id=payload.model or settings.model),
        system_prompt=payload.system_prompt,
        max_turns=payload.max_turns or 16,
        residency=payload.residency or "active_path_only",
    )
    return store.create_session(payload.session_id, policy)


def enqueue_turn(store: SqlStore, payload: EnqueueTurnPayload) -> PendingInput:
    body: dict[str, Any] = {"text": payload.text}
    if payload.branch_from:
        body["branch_from"] = payload.branch_from
    if payload.attachments:
        body["attachments"] = list(payload.attachments)
    source_key = payload.source_key or f"host:{payload.input_id or uuid.uuid4().hex}"
    return store.enqueue_input(
        InputDraft(
            session_id=payload.session_id,
            source_key=source_key,
            input=body,
            ingress="active_turn" if payload.steer else "next_turn",
            input_id=payload.input_id,
        )
    )


def cancel_input(store: SqlStore, payload: CancelInputPayload) -> dict[str, Any]:
    result: dict[str, Any] = {"session_id": payload.session_id}
    if payload.input_id is not None or payload.source_key is not None:
        outcome = store.cancel_input(
            payload.session_id, input_id=payload.input_id, source_key=payload.source_key
        )
        result["outcome"] = outcome.value
    if payload.interrupt:
        result["interrupt_requested"] = store.request_cancel(payload.session_id)
    return result
