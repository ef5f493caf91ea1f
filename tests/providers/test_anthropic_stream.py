"""The Anthropic Messages stream, on recorded wire fixtures: deltas, tool input, usage, cuts."""

from __future__ import annotations

import json

import pytest

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmRequest, Message, ToolCall, Usage
from lash_tasks.providers.anthropic_stream import MessagesStreamAccumulator, parse_messages_stream
from lash_tasks.providers.anthropic_wire import build_messages_request

from ._server import fixture_bytes


def _lines(name: str) -> list[str]:
    return fixture_bytes(name).decode().splitlines()


def test_request_asks_for_a_stream() -> None:
    """A streaming request carries `"stream": true`; a plain one carries no stream field."""
    request = LlmRequest(model="m", messages=(Message("user", "hi"),))
    assert build_messages_request(request, stream=True)["stream"] is True
    assert "stream" not in build_messages_request(request)


def test_text_deltas_tool_input_usage_and_stop_reason() -> None:
    """Text arrives delta by delta; the tool_use input is assembled from its JSON slices;
    usage comes from message_start (input) and message_delta (output)."""
    deltas: list[str] = []
    answer = parse_messages_stream(_lines("anthropic_messages_stream.sse"), deltas.append)

    assert deltas == ["Okay", ", let's check", " the weather for San Francisco, CA:"]
    assert answer.text == "".join(deltas)
    assert answer.tool_calls == (
        ToolCall(
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "get_weather",
            json.dumps({"location": "San Francisco, CA", "unit": "fahrenheit"}),
        ),
    )
    assert answer.usage == Usage(472, 89)
    assert answer.finish_reason == "tool_use"
    assert answer.model == "claude-3-5-sonnet-20241022"


def test_streamed_arguments_equal_the_non_streaming_form() -> None:
    """Streamed tool input is re-serialised like a non-streaming `input` object, so a
    journaled answer reads the same whichever way it was fetched."""
    answer = parse_messages_stream(_lines("anthropic_messages_stream.sse"))
    assert answer.tool_calls[0].arguments == json.dumps(json.loads(answer.tool_calls[0].arguments))


def test_a_stream_cut_before_message_stop_is_retryable() -> None:
    """Text already delivered stays delivered; the missing message_stop is a retryable
    error, since the same request can well succeed next time."""
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        parse_messages_stream(_lines("anthropic_messages_stream_cut.sse"), deltas.append)
    assert caught.value.retryable
    assert "message_stop" in caught.value.message
    assert deltas == ["The answer is"]


def test_an_error_event_mid_stream_raises_by_its_type() -> None:
    """An `overloaded_error` event mid-stream is the same retryable error as a 529 body."""
    with pytest.raises(ProviderError) as caught:
        parse_messages_stream(_lines("anthropic_messages_stream_overloaded.sse"))
    assert caught.value.retryable
    assert caught.value.details.get("error_type") == "overloaded_error"


def test_a_tool_without_input_and_unknown_events() -> None:
    """A tool_use block with no input deltas keeps the start's `{}`; unknown event and
    delta types (thinking) are skipped; cache tokens count as input."""
    events = [
        {
            "type": "message_start",
            "message": {
                "model": "m",
                "usage": {"input_tokens": 3, "cache_read_input_tokens": 7, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"},
        },
        {"type": "some_future_event", "index": 9},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "now", "input": {}},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    lines = [line for e in events for line in (f"data: {json.dumps(e)}", "")]
    answer = parse_messages_stream(lines)
    assert answer.text == ""
    assert answer.tool_calls == (ToolCall("toolu_9", "now", "{}"),)
    assert answer.usage == Usage(10, 5)


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        ("[1, 2]", "not an object"),
        ('{"type": "content_block_delta", "index": 4, "delta": {}}', "unknown content block"),
        ('{"type": "content_block_start", "content_block": {"type": "text"}}', "without index"),
        (
            '{"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}}',
            "without id or name",
        ),
    ],
)
def test_malformed_events_are_not_retryable(payload: str, what: str) -> None:
    """A structurally wrong event is a malformed answer, never retried."""
    with pytest.raises(ProviderError) as caught:
        MessagesStreamAccumulator().feed_data(payload)
    assert not caught.value.retryable
    assert what in caught.value.message


def test_tool_input_that_is_not_json_is_malformed() -> None:
    """Input slices that do not join into a JSON object are a malformed answer."""
    accumulator = MessagesStreamAccumulator()
    accumulator.feed_data(
        json.dumps(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            }
        )
    )
    accumulator.feed_data(
        json.dumps(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
            }
        )
    )
    accumulator.feed_data('{"type": "message_stop"}')
    with pytest.raises(ProviderError) as caught:
        accumulator.finish()
    assert not caught.value.retryable
