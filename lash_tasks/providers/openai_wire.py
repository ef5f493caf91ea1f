"""OpenAI Chat Completions wire format (`POST /v1/chat/completions`), as pure functions.

The same shape is spoken by vLLM, Ollama, llama.cpp's server and OpenRouter, so parsing is
deliberately lenient where those servers are known to differ from OpenAI (null usage, content
as a list of parts, tool-call arguments as an object, no `[DONE]` sentinel) and strict only
where the answer would otherwise be wrong.

Failure classes:
- a body that is not JSON or lacks `choices` is malformed: `ProviderError(retryable=False)`;
- a stream that ends before both `[DONE]` and a `finish_reason` was cut off in transit:
  `ProviderError(retryable=True)`, since the same request can well succeed next time;
- an `error` object inside a 200 body (OpenRouter does this mid-stream) is retryable when its
  numeric code is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lash_tasks.errors import ProviderError, ValidationError
from lash_tasks.machine.messages import (
    AttachmentContent,
    LlmRequest,
    LlmResponse,
    Message,
    ToolCall,
    Usage,
)
from lash_tasks.providers.attachment_parts import ImagePart, attachment_index, attachment_parts
from lash_tasks.providers.response_json import as_int, excerpt_of, loads_body, malformed
from lash_tasks.providers.sse_framing import iter_sse_data

PROVIDER = "openai"


def build_chat_request(
    request: LlmRequest, *, stream: bool = False, max_tokens_field: str = "max_tokens"
) -> dict[str, Any]:
    """The JSON body for one Chat Completions call.

    `max_tokens_field` exists because OpenAI's newer models only accept
    `max_completion_tokens`, while most compatible servers only know `max_tokens`.
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    contents = attachment_index(request.attachments)
    messages.extend(_wire_message(m, contents) for m in request.messages)
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
    if stream:
        # Without this, streamed answers carry no token counts at all.
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
    if request.max_output_tokens is not None:
        body[max_tokens_field] = request.max_output_tokens
    return body


def _wire_message(message: Message, contents: Mapping[str, AttachmentContent]) -> dict[str, Any]:
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ValidationError("tool message without tool_call_id", name=message.name)
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            # OpenAI wants null, not "", beside tool calls; some compatible servers choke on "".
            "content": message.text or None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ],
        }
    parts = attachment_parts(message, contents)
    if not parts:
        return {"role": message.role, "content": message.text}
    # A user message with attachments becomes a list of content parts; images travel inline
    # as data: URIs (the attachment store is not reachable from the provider).
    content: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
    for part in parts:
        if isinstance(part, ImagePart):
            content.append({"type": "image_url", "image_url": {"url": part.data_uri}})
        else:
            content.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": content}


def parse_chat_response(body: bytes | str | dict[str, Any]) -> LlmResponse:
    """An `LlmResponse` from a non-streaming Chat Completions body."""
    data = body if isinstance(body, dict) else loads_body(body, PROVIDER)
    if not isinstance(data, dict):
        raise malformed(PROVIDER, "top level is not an object", data)
    _raise_embedded_error(data)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed(PROVIDER, "no choices", data)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise malformed(PROVIDER, "choice without message", data)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise malformed(PROVIDER, "tool_calls is not a list", data)
    tool_calls = tuple(_tool_call(call, index, data) for index, call in enumerate(calls))
    return LlmResponse(
        text=_content_text(message.get("content")),
        tool_calls=tool_calls,
        usage=_usage(data.get("usage")),
        finish_reason=_str_or_none(choice.get("finish_reason")),
        model=_str_or_none(data.get("model")),
    )


def _tool_call(call: Any, index: int, data: Any) -> ToolCall:
    if not isinstance(call, dict):
        raise malformed(PROVIDER, "tool call is not an object", data)
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise malformed(PROVIDER, "tool call without function name", data)
    return ToolCall(
        call_id=_call_id(call.get("id"), index),
        name=function["name"],
        arguments=_arguments_text(function.get("arguments")),
    )


def _call_id(value: Any, index: int) -> str:
    # Some local servers omit ids; a positional id still pairs the result with its call.
    return value if isinstance(value, str) and value else f"call_{index}"


def _arguments_text(value: Any) -> str:
    # Our ToolCall keeps the raw JSON text. Ollama has been seen sending an object instead, and
    # an empty string is not JSON at all; both are normalised so tools can always json.loads.
    if isinstance(value, str):
        return value if value.strip() else "{}"
    if value is None:
        return "{}"
    return json.dumps(value)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens")))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _raise_embedded_error(data: dict[str, Any]) -> None:
    error = data.get("error")
    if error is None:
        return
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and not isinstance(code, bool) else None
    raise ProviderError(
        f"{PROVIDER}: error in response body: {str(message)[:200]}",
        status=status,
        body_excerpt=excerpt_of(json.dumps(data, default=str)),
        retryable=status is not None and (status in (408, 429) or status >= 500),
    )


@dataclass
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class ChatStreamAccumulator:
    """Folds Chat Completions stream chunks into one `LlmResponse`.

    Tool calls arrive as fragments keyed by `index`: the first carries id and name, the rest
    carry slices of the arguments string, which are concatenated in arrival order.
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._usage = Usage()
        self._finish_reason: str | None = None
        self._model: str | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed_data(self, payload: str) -> list[str]:
        """Consume one SSE data payload; returns the text deltas it carried."""
        if self._done:
            return []
        if payload.strip() == "[DONE]":
            self._done = True
            return []
        chunk = loads_body(payload, PROVIDER)
        if not isinstance(chunk, dict):
            raise malformed(PROVIDER, "stream chunk is not an object", chunk)
        _raise_embedded_error(chunk)
        if isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        deltas: list[str] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta, dict):
                text = _content_text(delta.get("content"))
                if text:
                    self._text.append(text)
                    deltas.append(text)
                self._feed_tool_calls(delta.get("tool_calls"), chunk)
            if isinstance(choice.get("finish_reason"), str):
                self._finish_reason = choice["finish_reason"]
        return deltas

    def _feed_tool_calls(self, fragments: Any, chunk: Any) -> None:
        if fragments is None:
            return
        if not isinstance(fragments, list):
            raise malformed(PROVIDER, "delta.tool_calls is not a list", chunk)
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                raise malformed(PROVIDER, "tool call fragment is not an object", chunk)
            index = fragment.get("index", position)
            if not isinstance(index, int):
                raise malformed(PROVIDER, "tool call fragment without index", chunk)
            partial = self._calls.setdefault(index, _PartialCall())
            if isinstance(fragment.get("id"), str) and fragment["id"]:
                partial.call_id = fragment["id"]
            function = fragment.get("function") or {}
            if isinstance(function, dict):
                if isinstance(function.get("name"), str) and function["name"]:
                    partial.name = partial.name or function["name"]
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    partial.arguments += arguments
                elif arguments is not None:
                    partial.arguments += json.dumps(arguments)

    def finish(self) -> LlmResponse:
        """The complete answer; raises a retryable error when the stream was cut off."""
        if not self._done and self._finish_reason is None:
            raise ProviderError(
                f"{PROVIDER}: stream ended before [DONE] or a finish_reason",
                body_excerpt="".join(self._text)[:500],
                retryable=True,
            )
        calls = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                raise malformed(PROVIDER, f"streamed tool call {index} has no name", {})
            calls.append(
                ToolCall(
                    call_id=_call_id(partial.call_id, index),
                    name=partial.name,
                    arguments=_arguments_text(partial.arguments),
                )
            )
        return LlmResponse(
            text="".join(self._text),
            tool_calls=tuple(calls),
            usage=self._usage,
            finish_reason=self._finish_reason,
            model=self._model,
        )


def parse_chat_stream(
    lines: Iterable[str], on_text_delta: Callable[[str], None] | None = None
) -> LlmResponse:
    """An `LlmResponse` from the lines of a streamed answer, reporting text as it arrives."""
    accumulator = ChatStreamAccumulator()
    for payload in iter_sse_data(lines):
        for delta in accumulator.feed_data(payload):
            if on_text_delta is not None:
                on_text_delta(delta)
        if accumulator.done:
            break
    return accumulator.finish()
