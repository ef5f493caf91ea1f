"""The broker contract for services that are not Python: each ingress task, the queue a
sender must name, and its payload's JSON Schema, generated from the pydantic models that
validate it (so the published schema cannot drift from what the workers accept).

`lash-tasks schema [TASK]` prints these; docs/ingress.md holds them for readers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from lash_tasks.errors import ValidationError
from lash_tasks.ingress.payloads import CancelInputPayload, CreateSessionPayload, EnqueueTurnPayload
from lash_tasks.machine.ids import ATTACHMENT_ID_PATTERN, SESSION_ID_PATTERN

INGRESS_QUEUE = "lash.ingress"
# Task name -> the model its one positional argument must validate against.
INGRESS_TASKS: dict[str, type[BaseModel]] = {
    "lash.ingress.create_session": CreateSessionPayload,
    "lash.ingress.enqueue_turn": EnqueueTurnPayload,
    "lash.ingress.cancel_input": CancelInputPayload,
}
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def payload_schema(task: str) -> dict[str, Any]:
    """The JSON Schema of `task`'s payload, titled by the task and naming its queue."""
    model = INGRESS_TASKS.get(task)
    if model is None:
        known = ", ".join(INGRESS_TASKS)
        raise ValidationError(f"task: unknown ingress task {task!r} (known: {known})")
    schema = model.model_json_schema()
    # Checked by validators, which pydantic cannot express in the schema: add them by hand.
    properties = schema["properties"]
    properties["session_id"]["pattern"] = SESSION_ID_PATTERN
    if "attachments" in properties:
        properties["attachments"]["items"]["pattern"] = ATTACHMENT_ID_PATTERN
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"lash-tasks:{task}",
        "x-lash-queue": INGRESS_QUEUE,
        **schema,
    }


def payload_schemas() -> dict[str, dict[str, Any]]:
    """Every ingress task's payload schema, by task name."""
    return {task: payload_schema(task) for task in INGRESS_TASKS}
