"""Anthropic Messages API wire format (`POST /v1/messages`), as pure functions.

Differences from our neutral messages that this module bridges:
- the system prompt is a top-level field, not a message (system-role messages join it);
- tool calls are `tool_use` content blocks whose `input` is an object, not a JSON string;
- tool results travel inside a *user* message as `tool_result` blocks, and all results of one
  assistant turn must sit in the same user message, so consecutive same-role messages merge;
- `max_tokens` is mandatory.

A body that is not JSON or has no `content` list is malformed: `ProviderError(retryable=False)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import (
    AttachmentContent,
    LlmRequest,
    LlmResponse,
    Message,
    ToolCall,
    Usage,
)
from lash_tasks.providers.attachment_parts import (
    AttachmentPart,
    ImagePart,
    attachment_index,
    attachment_parts,
)
from lash_tasks.providers.response_json import as_int, excerpt_of, loads_body, malformed

PROVIDER = "anthropic"
DEFAULT_MAX_TOKENS = 4096
RAW_ARGUMENTS_KEY = "_raw_arguments"

# Error types Anthropic documents as transient.
_RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error"})


def build_messages_request(
    request: LlmRequest, *, max_tokens: int = DEFAULT_MAX_TOKENS, stream: bool = False
) -> dict[str, Any]:
    """The JSON body for one Messages call; `max_tokens` applies when the request sets none.
    With `stream` the answer comes as server-sent events (`anthropic_stream`)."""
    system_parts = [request.system] if request.system else []
    messages: list[dict[str, Any]] = []
    contents = attachment_index(request.attachments)
    for message in request.messages:
        if message.role == "system":
            if message.text:
                system_parts.append(message.text)
            continue
        role, blocks = _wire_blocks(message, contents)
        if not blocks:
            # The API rejects empty content; an empty turn carries nothing worth keeping.
            continue
        if messages and messages[-1]["role"] == role:
            # The API would merge consecutive same-role turns anyway; doing it here keeps every
            # tool_result of one assistant turn in a single user message, as it requires.
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_output_tokens or max_tokens,
        "messages": messages,
    }
    if stream:
        body["stream"] = True
    if system_parts:
        body["system"] = "\n\n".join(system_parts)
    if request.tools:
        body["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
            for tool in request.tools
        ]
    return body


def _wire_blocks(
    message: Message, contents: Mapping[str, AttachmentContent]
) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        return "user", [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.text,
                "is_error": message.is_error,
            }
        ]
    # Attachments go before the message text: Anthropic documents that Claude reads images
    # best when they come first.
    blocks: list[dict[str, Any]] = [
        _attachment_block(part) for part in attachment_parts(message, contents)
    ]
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    if message.role == "assistant":
        blocks.extend(
            {
                "type": "tool_use",
                "id": call.call_id,
                "name": call.name,
                "input": tool_input(call.arguments),
            }
            for call in message.tool_calls
        )
    return message.role, blocks


def _attachment_block(part: AttachmentPart) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": part.media_type, "data": part.base64_data},
        }
    return {"type": "text", "text": part.text}


def tool_input(arguments: str) -> dict[str, Any]:
    """The `input` object for a tool_use block from our raw JSON argument text.

    Another provider's model may have produced arguments that are not a JSON object; the
    history must still be sendable, so the raw text is wrapped instead of failing the session.
    """
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {RAW_ARGUMENTS_KEY: arguments}
    return value if isinstance(value, dict) else {RAW_ARGUMENTS_KEY: arguments}


def parse_messages_response(body: bytes | str | dict[str, Any]) -> LlmResponse:
    """An `LlmResponse` from a non-streaming Messages body.

    Usage counts cache writes and reads as input: Anthropic reports them apart from
    `input_tokens`, while OpenAI's `prompt_tokens` already includes cached tokens, and budgets
    should mean the same thing for both.
    """
    data = body if isinstance(body, dict) else loads_body(body, PROVIDER)
    if not isinstance(data, dict):
        raise malformed(PROVIDER, "top level is not an object", data)
    if data.get("type") == "error":
        raise api_error(data)
    content = data.get("content")
    if not isinstance(content, list):
        raise malformed(PROVIDER, "no content list", data)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            raise malformed(PROVIDER, "content block is not an object", data)
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise malformed(PROVIDER, "tool_use block without id or name", data)
            calls.append(
                ToolCall(
                    call_id=block["id"],
                    name=block["name"],
                    arguments=json.dumps(block.get("input", {})),
                )
            )
        # thinking / redacted_thinking and future block types carry nothing we keep.
    raw_usage = data.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    stop_reason = data.get("stop_reason")
    model = data.get("model")
    return LlmResponse(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=Usage(input_tokens(usage), as_int(usage.get("output_tokens"))),
        finish_reason=stop_reason if isinstance(stop_reason, str) else None,
        model=model if isinstance(model, str) else None,
    )


def input_tokens(usage: dict[str, Any]) -> int:
    """Input tokens of a `usage` object, cache writes and reads included (see above)."""
    return (
        as_int(usage.get("input_tokens"))
        + as_int(usage.get("cache_creation_input_tokens"))
        + as_int(usage.get("cache_read_input_tokens"))
    )


def api_error(data: dict[str, Any]) -> ProviderError:
    """The error an `{"type": "error", ...}` body (or stream event) reports."""
    raw_error = data.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    kind = str(error.get("type", "unknown"))
    return ProviderError(
        f"{PROVIDER}: {kind}: {str(error.get('message', ''))[:200]}",
        body_excerpt=excerpt_of(json.dumps(data, default=str)),
        retryable=kind in _RETRYABLE_ERROR_TYPES,
        error_type=kind,
    )
