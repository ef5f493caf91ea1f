"""Conversation values shared by the graph, the turn step and the LLM wire formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """One tool invocation the model asked for. `arguments` is the raw JSON text it sent."""

    call_id: str
    name: str
    arguments: str

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(call_id=data["call_id"], name=data["name"], arguments=data["arguments"])


@dataclass(frozen=True)
class Message:
    """One conversation message. Tool results carry `tool_call_id` and `name`."""

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False
    attachments: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "text": self.text}
        if self.tool_calls:
            data["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        if self.is_error:
            data["is_error"] = True
        if self.attachments:
            data["attachments"] = list(self.attachments)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            role=data["role"],
            text=data.get("text", ""),
            tool_calls=tuple(ToolCall.from_json(c) for c in data.get("tool_calls", ())),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            is_error=bool(data.get("is_error", False)),
            attachments=tuple(data.get("attachments", ())),
        )


@dataclass(frozen=True)
class ToolManifest:
    """What the model is told about one tool: JSON-schema `parameters`."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolManifest:
        return cls(
            name=data["name"], description=data["description"], parameters=data["parameters"]
        )


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def to_json(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(int(data.get("input_tokens", 0)), int(data.get("output_tokens", 0)))


@dataclass(frozen=True)
class AttachmentContent:
    """An attachment fetched for one LLM call. `media_type` is what its put named (None when
    unknown); `data` is empty when the content was too large to fetch (`complete` is False)."""

    attachment_id: str
    media_type: str | None
    size: int
    data: bytes = field(default=b"", repr=False)

    @property
    def complete(self) -> bool:
        return len(self.data) == self.size


@dataclass(frozen=True)
class LlmRequest:
    """Everything an LLM provider needs for one call; no provider-specific fields.

    Messages name attachments by id; `attachments` carries the content of those the caller
    could read. It stays out of `to_json`: the id is the content's sha256, so the JSON (the
    effect journal's envelope) already pins the content without megabytes of it.
    """

    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolManifest, ...] = ()
    max_output_tokens: int | None = None
    attachments: tuple[AttachmentContent, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "system": self.system,
            "messages": [m.to_json() for m in self.messages],
            "tools": [t.to_json() for t in self.tools],
            "max_output_tokens": self.max_output_tokens,
        }


@dataclass(frozen=True)
class LlmResponse:
    """One model answer: text and/or tool calls, with token usage."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    finish_reason: str | None = None
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [c.to_json() for c in self.tool_calls],
            "usage": self.usage.to_json(),
            "finish_reason": self.finish_reason,
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LlmResponse:
        return cls(
            text=data.get("text", ""),
            tool_calls=tuple(ToolCall.from_json(c) for c in data.get("tool_calls", ())),
            usage=Usage.from_json(data.get("usage", {})),
            finish_reason=data.get("finish_reason"),
            model=data.get("model"),
        )
