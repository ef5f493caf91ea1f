from __future__ import annotations

import json

import pytest

from lash_tasks.errors import ProviderError, ValidationError
from lash_tasks.machine.messages import LlmRequest, Message, ToolCall, ToolManifest, Usage
from lash_tasks.providers.openai_wire import (
    ChatStreamAccumulator,
    build_chat_request,
    parse_chat_response,
    parse_chat_stream,
)
from lash_tasks.providers.sse_framing import iter_sse_data

from ._server import fixture_bytes

WEATHER = ToolManifest(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def _conversation() -> LlmRequest:
    return LlmRequest(
        model="gpt-4o-mini",
        system="You are terse.",
        messages=(
            Message(role="user", text="Weather and time in Paris?"),
            Message(
                role="assistant",
                text="",
                tool_calls=(
                    ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                    ToolCall("call_2", "get_time", '{"timezone":"Europe/Paris"}'),
                ),
            ),
            Message(role="tool", text="18C, cloudy", tool_call_id="call_1", name="get_weather"),
            Message(role="tool", text="no clock", tool_call_id="call_2", is_error=True),
        ),
        tools=(WEATHER,),
        max_output_tokens=256,
    )


def test_build_request_full_conversation() -> None:
    body = build_chat_request(_conversation())
    assert body == {
        "model": "gpt-4o-mini",
        "stream": False,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather and time in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {
                            "name": "get_time",
                            "arguments": '{"timezone":"Europe/Paris"}',
                        },
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "call_2", "content": "no clock"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    }
    json.dumps(body)


def test_build_request_streaming_and_minimal() -> None:
    request = LlmRequest(model="llama3", messages=(Message(role="user", text="hi"),))
    body = build_chat_request(request, stream=True, max_tokens_field="max_completion_tokens")
    assert body == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_build_request_assistant_text_with_tool_call_keeps_text() -> None:
    request = LlmRequest(
        model="m",
        messages=(
            Message(role="assistant", text="Checking.", tool_calls=(ToolCall("c", "t", "{}"),)),
        ),
        max_output_tokens=9,
    )
    body = build_chat_request(request, max_tokens_field="max_completion_tokens")
    assert body["messages"][0]["content"] == "Checking."
    assert body["max_completion_tokens"] == 9


def test_build_request_rejects_tool_message_without_call_id() -> None:
    request = LlmRequest(model="m", messages=(Message(role="tool", text="x"),))
    with pytest.raises(ValidationError):
        build_chat_request(request)


def test_parse_text_answer() -> None:
    answer = parse_chat_response(fixture_bytes("openai_chat_text.json"))
    assert answer.text == "Hello! How can I assist you today?"
    assert answer.tool_calls == ()
    assert answer.usage == Usage(19, 10)
    assert answer.finish_reason == "stop"
    assert answer.model == "gpt-4o-2024-08-06"


def test_parse_two_tool_calls() -> None:
    answer = parse_chat_response(fixture_bytes("openai_chat_tool_calls.json"))
    assert answer.text == ""
    assert answer.tool_calls == (
        ToolCall(
            "call_qS4dBmA1bB4vYjQwzJmXbL2k", "get_weather", '{"city":"Paris","unit":"celsius"}'
        ),
        ToolCall("call_Zx7h2OoK8nVfV1g0yTq3sR9e", "get_time", '{"timezone":"Europe/Paris"}'),
    )
    assert answer.usage == Usage(82, 51)
    assert answer.finish_reason == "tool_calls"
    assert answer.model == "gpt-4o-mini-2024-07-18"


def test_parse_lenient_compatible_server_shapes() -> None:
    answer = parse_chat_response(
        {
            "choices": [
                {
                    "message": {
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                        "tool_calls": [
                            {"function": {"name": "f", "arguments": {"x": 1}}},
                            {"id": "id2", "function": {"name": "g", "arguments": ""}},
                        ],
                    },
                    "finish_reason": None,
                }
            ],
            "usage": None,
        }
    )
    assert answer.text == "ab"
    assert answer.tool_calls == (ToolCall("call_0", "f", '{"x": 1}'), ToolCall("id2", "g", "{}"))
    assert answer.usage == Usage()
    assert answer.finish_reason is None


def test_malformed_json_is_not_retryable() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_chat_response(fixture_bytes("openai_chat_malformed.json"))
    assert not caught.value.retryable
    assert "malformed JSON" in caught.value.message
    assert caught.value.body_excerpt.startswith('{"id":"chatcmpl-B9MBs8')


@pytest.mark.parametrize(
    "body",
    [
        fixture_bytes("openai_chat_no_choices.json"),
        b"[1, 2]",
        b'{"choices": [{"index": 0}]}',
        b'{"choices": [{"message": {"tool_calls": [{"id": "x", "function": {}}]}}]}',
    ],
)
def test_wrong_shape_is_malformed(body: bytes) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_chat_response(body)
    assert not caught.value.retryable
    assert "malformed response" in caught.value.message


def test_error_object_in_ok_body_carries_its_code() -> None:
    body = {"error": {"message": "Upstream overloaded", "code": 502}}
    with pytest.raises(ProviderError) as caught:
        parse_chat_response(body)
    assert caught.value.status == 502
    assert caught.value.retryable


def test_parse_stream_text_and_fragmented_tool_call() -> None:
    deltas: list[str] = []
    lines = fixture_bytes("openai_chat_stream.sse").decode().splitlines()
    answer = parse_chat_stream(lines, deltas.append)
    assert deltas == ["Let me", " check the", " weather."]
    assert answer.text == "Let me check the weather."
    assert answer.tool_calls == (
        ToolCall("call_8fJ2kLmN0pQrStUvWxYz1234", "get_weather", '{"city":"Paris"}'),
    )
    assert answer.usage == Usage(71, 24)
    assert answer.finish_reason == "tool_calls"
    assert answer.model == "gpt-4o-mini-2024-07-18"


def test_stream_cut_off_is_retryable() -> None:
    lines = fixture_bytes("openai_chat_stream_cut.sse").decode().splitlines()
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        parse_chat_stream(lines, deltas.append)
    assert caught.value.retryable
    assert deltas == ["The answer is"]


def test_stream_with_finish_reason_but_no_done_is_complete() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    answer = parse_chat_stream([f"data: {json.dumps(chunk)}", ""])
    assert answer.text == "ok"
    assert answer.finish_reason == "stop"


def test_stream_malformed_chunk_is_not_retryable() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_chat_stream(['data: {"choices": [', "", "data: [DONE]", ""])
    assert not caught.value.retryable


def test_stream_ignores_data_after_done() -> None:
    accumulator = ChatStreamAccumulator()
    assert accumulator.feed_data("[DONE]") == []
    assert accumulator.feed_data("not json at all") == []
    assert accumulator.finish().text == ""


def test_sse_framing() -> None:
    lines = [
        ": OPENROUTER PROCESSING",
        "",
        "event: message",
        "data: first",
        "data:second",
        "",
        "id: 3",
        "data: [DONE]",
    ]
    assert list(iter_sse_data(lines)) == ["first\nsecond", "[DONE]"]
