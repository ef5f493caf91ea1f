"""What a session's live readers see: one small family of events with a stable JSON form.

Every event names its `session_id`, and when a turn step emitted it its `turn_id`, `step`
index and `attempt` (an id unique per step attempt). `text_delta` events are provisional:
they count once a `step_committed` of the same attempt follows, and a `step_discarded` of
that attempt says to drop them (the step lost its lease, or is retried). Every other event
describes something that happened. `cursor` is set on events read back, never stored: pass
the last one seen to resume after it.

The stored form (a Redis Stream entry, or a `lash_session_events` row) is the JSON of the
event without its cursor, plus `schema_version`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from lash_tasks.errors import SchemaVersionError

SCHEMA_VERSION = 1
GapReason = Literal["trimmed", "lost", "dropped"]


class _Event(BaseModel):
    # Unknown fields are ignored so that a reader keeps working when a newer writer adds one.
    model_config = ConfigDict(frozen=True, extra="ignore")

    session_id: str
    turn_id: str | None = None
    step: int | None = None
    attempt: str | None = None
    # The emitter's wall clock, for people and latency figures; the order is the cursor's.
    at_ms: int
    cursor: str | None = None


class TurnStarted(_Event):
    type: Literal["turn_started"] = "turn_started"
    input_ids: tuple[str, ...] = ()


class TextDelta(_Event):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ToolCallStarted(_Event):
    type: Literal["tool_call_started"] = "tool_call_started"
    call_id: str
    name: str


class ToolCallFinished(_Event):
    type: Literal["tool_call_finished"] = "tool_call_finished"
    call_id: str
    name: str
    duration_ms: int
    error: str | None = None


class StepCommitted(_Event):
    type: Literal["step_committed"] = "step_committed"
    head_revision: int


class StepDiscarded(_Event):
    type: Literal["step_discarded"] = "step_discarded"
    reason: str


class TurnFinished(_Event):
    type: Literal["turn_finished"] = "turn_finished"
    outcome: dict[str, Any]
    input_ids: tuple[str, ...] = ()
    head_revision: int | None = None


class TurnStopped(_Event):
    type: Literal["turn_stopped"] = "turn_stopped"
    outcome: dict[str, Any]
    input_ids: tuple[str, ...] = ()
    head_revision: int | None = None


class InputAccepted(_Event):
    type: Literal["input_accepted"] = "input_accepted"
    input_ids: tuple[str, ...]


class InputCancelled(_Event):
    type: Literal["input_cancelled"] = "input_cancelled"
    input_id: str


class ProcessStarted(_Event):
    type: Literal["process_started"] = "process_started"
    process_id: str
    kind: str | None = None


class ProcessFinished(_Event):
    type: Literal["process_finished"] = "process_finished"
    process_id: str
    status: str


class Gap(_Event):
    """Events between the reader's cursor and this one are gone (trimmed, the stream was
    lost, or a publisher dropped them while Redis was unreachable). `view` is the session
    view when the gap was found, so the reader can resynchronise from it."""

    type: Literal["gap"] = "gap"
    reason: GapReason
    view: dict[str, Any] | None = None


SessionEvent = Annotated[
    TurnStarted
    | TextDelta
    | ToolCallStarted
    | ToolCallFinished
    | StepCommitted
    | StepDiscarded
    | TurnFinished
    | TurnStopped
    | InputAccepted
    | InputCancelled
    | ProcessStarted
    | ProcessFinished
    | Gap,
    Field(discriminator="type"),
]
TURN_ENDS = ("turn_finished", "turn_stopped")

_ADAPTER: TypeAdapter[SessionEvent] = TypeAdapter(SessionEvent)


def event_record(event: SessionEvent) -> dict[str, Any]:
    """The stored form: the event's JSON without its cursor, with `schema_version`."""
    return {"schema_version": SCHEMA_VERSION, **event.model_dump(mode="json", exclude={"cursor"})}


def event_from_record(record: Any, cursor: str) -> SessionEvent:
    """An event read back from its stored form, carrying the cursor it was read at."""
    if not isinstance(record, dict) or record.get("schema_version") != SCHEMA_VERSION:
        version = record.get("schema_version") if isinstance(record, dict) else None
        raise SchemaVersionError(
            f"event at cursor {cursor} has schema_version {version!r}; "
            f"this build reads version {SCHEMA_VERSION}"
        )
    try:
        return _ADAPTER.validate_python({**record, "cursor": cursor})
    except PydanticValidationError as exc:
        raise SchemaVersionError(
            f"event at cursor {cursor} does not match schema v{SCHEMA_VERSION}: "
            f"{exc.errors()[0]['msg']}"
        ) from None


def event_json(event: SessionEvent) -> str:
    """One line of JSON, cursor included: what `watch --json` prints and SSE carries."""
    return json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
