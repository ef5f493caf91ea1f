"""Ingress payloads, validated at the edge: a bad one names the field and writes nothing."""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from lash_tasks.errors import ValidationError
from lash_tasks.machine.ids import check_attachment_id, check_session_id
from lash_tasks.settings import PROVIDER_NAME

P = TypeVar("P", bound=BaseModel)
MAX_ATTACHMENTS_PER_INPUT = 32
MAX_TOOLS_PER_SESSION = 128
# The strictest common rule of the LLM wire formats (as the tool registry enforces).
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
# A Celery task or queue name a reply is sent to: dotted words, no spaces or wildcards.
CELERY_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("session_id", check_fields=False)
    @classmethod
    def _session_id(cls, value: str) -> str:
        try:
            return check_session_id(value)
        except ValidationError as exc:
            raise ValueError(exc.message) from None


class CreateSessionPayload(_Payload):
    session_id: str
    model: str | None = Field(default=None, min_length=1, max_length=200)
    # One of the LLM provider names the fleet knows (see `Settings.llm_endpoints`).
    provider: str | None = Field(default=None, pattern=PROVIDER_NAME.pattern)
    system_prompt: str | None = None
    max_turns: int | None = Field(default=None, gt=0, le=1000)
    residency: Literal["keep_all", "active_path_only"] | None = None
    # Names of the worker's registered tools the session may use (None: every one).
    tools: tuple[str, ...] | None = Field(default=None, max_length=MAX_TOOLS_PER_SESSION)

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        bad = [name for name in value if not re.match(TOOL_NAME, name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a tool name (letters, digits, _ and -)")
        return tuple(dict.fromkeys(value))


class ReplyTo(_Payload):
    """Where the fleet sends a turn's outcome when it ends: a Celery task on a queue."""

    task: str = Field(pattern=CELERY_NAME)
    queue: str = Field(pattern=CELERY_NAME)

    @field_validator("queue")
    @classmethod
    def _not_ours(cls, value: str) -> str:
        if value.startswith("lash."):
            raise ValueError(f"{value!r} is a queue of lash-tasks itself; name your own")
        return value


class EnqueueTurnPayload(_Payload):
    session_id: str
    text: str = Field(min_length=1, max_length=1_000_000)
    source_key: str | None = Field(default=None, min_length=1, max_length=400)
    input_id: str | None = Field(default=None, min_length=1, max_length=200)
    branch_from: str | None = Field(default=None, min_length=1, max_length=200)
    # Ids of attachments put for this session beforehand (`Client.put_attachment`), never
    # bytes: the payload travels through the broker and shows in Flower.
    attachments: tuple[str, ...] = Field(default=(), max_length=MAX_ATTACHMENTS_PER_INPUT)
    steer: bool = False
    # Sent the turn's outcome when it ends (at least once; see docs/operations.md).
    reply_to: ReplyTo | None = None

    @field_validator("attachments")
    @classmethod
    def _attachment_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(dict.fromkeys(check_attachment_id(a) for a in value))
        except ValidationError as exc:
            raise ValueError(exc.message) from None


class CancelInputPayload(_Payload):
    session_id: str
    input_id: str | None = None
    source_key: str | None = None
    interrupt: bool = False


def parse_payload(model: type[P], data: Any) -> P:
    """Validate `data` into `model`, raising our `ValidationError` naming each bad field."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise ValidationError(f"{model.__name__} must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationError(f"invalid {model.__name__}: {problems}") from None
