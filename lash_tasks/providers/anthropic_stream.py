"""Anthropic Messages streaming (`"stream": true`): server-sent events folded into one answer.

The stream is a sequence of typed events: `message_start` (model, input usage), then per
content block a `content_block_start`, its `content_block_delta`s and a `content_block_stop`,
then `message_delta` (stop reason, output usage) and `message_stop`. `ping` and event types
this module does not know are skipped, as Anthropic asks of clients.

- Text blocks stream `text_delta`s: each is handed to the caller as it arrives.
- A `tool_use` block streams its input as `input_json_delta` slices of one JSON text, which
  is only valid once the block is complete; it is parsed at the end, and re-serialised the
  way the non-streaming parser does, so both paths record the same arguments.
- An `error` event (e.g. `overloaded_error` mid-stream) raises the same error a JSON error
  body would, retryable by its type.
- A stream that ends before `message_stop` was cut off in transit: a retryable error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmResponse, ToolCall, Usage
from lash_tasks.providers.anthropic_wire import PROVIDER, api_error, input_tokens
from lash_tasks.providers.response_json import as_int, loads_body, malformed
from lash_tasks.providers.sse_framing import iter_sse_data


@dataclass
class _Block:
    kind: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    input_json: list[str] = field(default_factory=list)
    start_input: Any = None


class MessagesStreamAccumulator:
    """Folds Messages stream events (their `data` payloads) into one `LlmResponse`."""

    def __init__(self) -> None:
        self._blocks: dict[int, _Block] = {}
        self._input_tokens = 0
        self._output_tokens = 0
        self._stop_reason: str | None = None
        self._model: str | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed_data(self, payload: str) -> list[str]:
        """Consume one event's data; returns the text deltas it carried."""
        if self._done:
            return []
        event = loads_body(payload, PROVIDER)
        if not isinstance(event, dict):
            raise malformed(PROVIDER, "stream event is not an object", event)
        kind = event.get("type")
        if kind == "error":
            raise api_error(event)
        if kind == "message_start":
            self._start(event)
        elif kind == "content_block_start":
            self._block_start(event)
        elif kind == "content_block_delta":
            return self._block_delta(event)
        elif kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_stop":
            self._done = True
        return []

    def _start(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        if not isinstance(message, dict):
            raise malformed(PROVIDER, "message_start without message", event)
        if isinstance(message.get("model"), str):
            self._model = message["model"]
        self._usage(message.get("usage"))

    def _usage(self, usage: Any) -> None:
        # message_start carries the input side; message_delta the cumulative output, and
        # (newer API versions) the input side again, which then wins.
        if not isinstance(usage, dict):
            return
        if any(key in usage for key in ("input_tokens", "cache_read_input_tokens")):
            self._input_tokens = input_tokens(usage)
        if "output_tokens" in usage:
            self._output_tokens = as_int(usage.get("output_tokens"))

    def _index(self, event: dict[str, Any]) -> int:
        index = event.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise malformed(PROVIDER, f"{event.get('type')} without index", event)
        return index

    def _block_start(self, event: dict[str, Any]) -> None:
        block = event.get("content_block")
        if not isinstance(block, dict):
            raise malformed(PROVIDER, "content_block_start without content_block", event)
        kind = str(block.get("type"))
        entry = self._blocks[self._index(event)] = _Block(kind)
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            entry.text.append(block["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise malformed(PROVIDER, "tool_use block without id or name", event)
            entry.call_id, entry.name = block["id"], block["name"]
            entry.start_input = block.get("input")

    def _block_delta(self, event: dict[str, Any]) -> list[str]:
        index = self._index(event)
        block = self._blocks.get(index)
        delta = event.get("delta")
        if block is None or not isinstance(delta, dict):
            raise malformed(PROVIDER, f"delta for unknown content block {index}", event)
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            if delta["text"]:
                block.text.append(delta["text"])
                return [delta["text"]]
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            block.input_json.append(delta["partial_json"])
        # thinking_delta, signature_delta and future kinds carry nothing we keep.
        return []

    def _message_delta(self, event: dict[str, Any]) -> None:
        delta = event.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            self._stop_reason = delta["stop_reason"]
        self._usage(event.get("usage"))

    def finish(self) -> LlmResponse:
        """The complete answer; raises a retryable error when the stream was cut off."""
        text = "".join(
            "".join(block.text) for _, block in sorted(self._blocks.items()) if block.kind == "text"
        )
        if not self._done:
            raise ProviderError(
                f"{PROVIDER}: stream ended before message_stop",
                body_excerpt=text[:500],
                retryable=True,
            )
        calls = tuple(
            ToolCall(block.call_id, block.name, self._arguments(index, block))
            for index, block in sorted(self._blocks.items())
            if block.kind == "tool_use"
        )
        return LlmResponse(
            text=text,
            tool_calls=calls,
            usage=Usage(self._input_tokens, self._output_tokens),
            finish_reason=self._stop_reason,
            model=self._model,
        )

    def _arguments(self, index: int, block: _Block) -> str:
        raw = "".join(block.input_json)
        if not raw.strip():
            # A tool without parameters streams no input at all; the start's `{}` stands.
            value = block.start_input if isinstance(block.start_input, dict) else {}
            return json.dumps(value)
        try:
            value = json.loads(raw)
        except ValueError:
            raise malformed(
                PROVIDER, f"tool_use block {index} streamed input that is not JSON", {"raw": raw}
            ) from None
        if not isinstance(value, dict):
            raise malformed(PROVIDER, f"tool_use block {index} input is not an object", value)
        return json.dumps(value)


def parse_messages_stream(
    lines: Iterable[str], on_text_delta: Callable[[str], None] | None = None
) -> LlmResponse:
    """An `LlmResponse` from the lines of a streamed answer, reporting text as it arrives."""
    accumulator = MessagesStreamAccumulator()
    for payload in iter_sse_data(lines):
        for delta in accumulator.feed_data(payload):
            if on_text_delta is not None:
                on_text_delta(delta)
        if accumulator.done:
            break
    return accumulator.finish()
