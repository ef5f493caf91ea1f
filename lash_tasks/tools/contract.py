"""The contract between the runtime and a tool provider."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from lash_tasks.errors import SchemaVersionError
from lash_tasks.machine.messages import Message, ToolManifest


@runtime_checkable
class AttachmentSink(Protocol):
    """Where a tool may put bytes too big or too binary for the conversation."""

    def put(self, data: bytes, media_type: str) -> str:
        """Store `data` and return the attachment id the model can be told about."""
        ...


@dataclass(frozen=True)
class ToolContext:
    """Who is calling. `attachments` is None when the worker has no attachment store wired."""

    session_id: str
    turn_id: str
    call_id: str
    attachments: AttachmentSink | None = None


@dataclass(frozen=True)
class ToolResult:
    """What goes back to the model. Errors are results too: the model is meant to read them."""

    text: str
    is_error: bool = False
    attachments: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "is_error": self.is_error, "attachments": list(self.attachments)}

    @classmethod
    def from_json(cls, data: Any) -> ToolResult:
        # Results are persisted as effect outcomes, so a bad shape is a schema problem,
        # not a KeyError deep inside replay.
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise SchemaVersionError("tool result must be an object with a string 'text'")
        is_error = data.get("is_error", False)
        attachments = data.get("attachments", [])
        if not isinstance(is_error, bool):
            raise SchemaVersionError("tool result 'is_error' must be a boolean")
        if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
            raise SchemaVersionError("tool result 'attachments' must be a list of strings")
        return cls(text=data["text"], is_error=is_error, attachments=tuple(attachments))

    def to_message(self, tool_call_id: str, name: str) -> Message:
        """The conversation message that answers the tool call `tool_call_id`."""
        return Message(
            role="tool",
            text=self.text,
            tool_call_id=tool_call_id,
            name=name,
            is_error=self.is_error,
            attachments=self.attachments,
        )


# How a background tool run recovers when its worker is lost: run again from the start, or
# (it may have done part of its work) never again — abandoned, with evidence.
BackgroundDisposition = Literal["rerunnable", "owner_bound"]
BACKGROUND_DISPOSITIONS: tuple[BackgroundDisposition, ...] = ("rerunnable", "owner_bound")


@runtime_checkable
class ToolProvider(Protocol):
    """A named group of tools.

    `execute` may raise `ToolError` (its message is shown to the model as-is) or return an
    error `ToolResult`; the registry turns any other exception into an error result too.

    A provider declares tools that run in the background with a `background_tools`
    attribute (see `BackgroundToolProvider`): calling one registers a process and answers
    the model with its handle at once; a worker runs `execute` later, and the result
    reaches the session as a message when the process completes.
    """

    name: str

    def manifests(self) -> list[ToolManifest]: ...

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult: ...


@runtime_checkable
class BackgroundToolProvider(ToolProvider, Protocol):
    """A tool provider some of whose tools run in the background: `background_tools` maps
    each such tool's name to its recovery disposition."""

    background_tools: Mapping[str, BackgroundDisposition]
