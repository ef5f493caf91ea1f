"""Session policy and model spec, validated at the edges (persisted JSON, ingress)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from lash_tasks.errors import InvalidModelSpec, SchemaVersionError

SCHEMA_VERSION: Literal[1] = 1


class ModelSpec(BaseModel):
    """Which model a session talks to. `id` is required; the context window must be positive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    context_window_tokens: int = Field(default=128_000, gt=0)
    output_token_capacity: int | None = Field(default=None, gt=0)


class SessionPolicy(BaseModel):
    """How a session runs. Persisted with the session; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    provider: str = "scripted"
    model: ModelSpec
    system_prompt: str | None = None
    max_turns: int = Field(default=16, gt=0, le=1000)
    residency: Literal["keep_all", "active_path_only"] = "active_path_only"
    orphan_policy: Literal["keep_history", "drop_orphans"] = "drop_orphans"
    # The worker's registered tools the session may use; None: all of them.
    tools: tuple[str, ...] | None = None


def parse_model_spec(data: Any) -> ModelSpec:
    """Build a `ModelSpec`, raising `InvalidModelSpec` that names the bad field."""
    if isinstance(data, ModelSpec):
        return data
    try:
        return ModelSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise InvalidModelSpec(f"invalid model spec: {_describe(exc)}") from None


def parse_policy(data: Any) -> SessionPolicy:
    """Load a persisted or submitted policy; unknown shapes raise `SchemaVersionError`."""
    if isinstance(data, SessionPolicy):
        return data
    if isinstance(data, dict) and "model" in data and not isinstance(data["model"], ModelSpec):
        parse_model_spec(data["model"])
    try:
        return SessionPolicy.model_validate(data)
    except PydanticValidationError as exc:
        raise SchemaVersionError(
            f"session policy does not match schema v1: {_describe(exc)}"
        ) from None


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
