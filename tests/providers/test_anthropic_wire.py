from __future__ import annotations

import json

import pytest

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmRequest, Message, ToolCall, ToolManifest, Usage
from lash_tasks.providers.anthropic_wire import (
    build_messages_request,
    parse_messages_response,
    tool_input,
)

from ._server import fixture_bytes


def _conversation(**kwargs: object) -> LlmRequest:
    return LlmRequest(
        model="claude-3-5-sonnet-20241022",
        system="You are terse.",
        messages=(
            Message(role="user", text="Weather and time in Paris?"),
            Message(
                role="assistant",
                text="Checking both.",
                tool_calls=(
                    ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
                    ToolCall("toolu_2", "get_time", "{}"),
                ),
            ),
            Message(role="tool", text="18C", tool_call_id="toolu_1", name="get_weather"),
            Message(role="tool", text="no clock", tool_call_id="toolu_2", is_error=True),
            Message(role="assistant", text="18C; time unknown."),
            Message(role="user", text="Thanks"),
        ),
        tools=(
            ToolManifest(
                name="get_weather",
                description="Weather.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}},
            ),
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def test_build_request_full_conversation() -> None:
    body = build_messages_request(_conversation())
    assert body == {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 4096,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking both."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "18C",
                        "is_error": False,
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": "no clock",
                        "is_error": True,
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "18C; time unknown."}]},
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
    }
    json.dumps(body)


def test_request_max_output_tokens_wins() -> None:
    assert build_messages_request(_conversation(max_output_tokens=100))["max_tokens"] == 100
    assert build_messages_request(_conversation(), max_tokens=50)["max_tokens"] == 50


def test_user_text_after_tool_results_joins_the_same_turn() -> None:
    request = LlmRequest(
        model="m",
        messages=(
            Message(role="user", text="go"),
            Message(role="assistant", tool_calls=(ToolCall("t1", "f", "{}"),)),
            Message(role="tool", text="r1", tool_call_id="t1"),
            Message(role="user", text="and now?"),
        ),
    )
    messages = build_messages_request(request)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[2]["content"]] == ["tool_result", "text"]


def test_system_messages_join_top_level_system_and_empty_turns_vanish() -> None:
    request = LlmRequest(
        model="m",
        system="base",
        messages=(
            Message(role="system", text="extra rules"),
            Message(role="user", text="hi"),
            Message(role="assistant", text=""),
        ),
    )
    body = build_messages_request(request)
    assert body["system"] == "base\n\nextra rules"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "tools" not in body


def test_tool_input_from_raw_arguments() -> None:
    assert tool_input('{"a": [1, 2]}') == {"a": [1, 2]}
    assert tool_input("") == {}
    assert tool_input("{not json") == {"_raw_arguments": "{not json"}
    assert tool_input("[1]") == {"_raw_arguments": "[1]"}


def test_parse_text_and_tool_use() -> None:
    answer = parse_messages_response(fixture_bytes("anthropic_messages_tool_use.json"))
    assert answer.text == "I'll look up the weather in Paris and the local time."
    assert answer.tool_calls == (
        ToolCall(
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            json.dumps({"city": "Paris", "unit": "celsius"}),
        ),
        ToolCall("toolu_01B7xKd2mN3pQ8rS4tU6vW1y", "get_time", '{"timezone": "Europe/Paris"}'),
    )
    assert answer.usage == Usage(384, 98)
    assert answer.finish_reason == "tool_use"
    assert answer.model == "claude-3-5-sonnet-20241022"


def test_parse_counts_cache_tokens_as_input() -> None:
    answer = parse_messages_response(fixture_bytes("anthropic_messages_text.json"))
    assert answer.text == "Hi! My name is Claude."
    assert answer.tool_calls == ()
    assert answer.usage == Usage(1112, 10)
    assert answer.finish_reason == "end_turn"


@pytest.mark.parametrize(
    "name", ["anthropic_messages_malformed.json", "anthropic_messages_no_content.json"]
)
def test_malformed_bodies_are_not_retryable(name: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_messages_response(fixture_bytes(name))
    assert not caught.value.retryable
    assert "malformed" in caught.value.message


def test_error_body_overloaded_is_retryable() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_messages_response(fixture_bytes("anthropic_error_overloaded.json"))
    assert caught.value.retryable
    assert caught.value.details["error_type"] == "overloaded_error"


def test_tool_use_without_id_is_malformed() -> None:
    with pytest.raises(ProviderError):
        parse_messages_response({"content": [{"type": "tool_use", "name": "f", "input": {}}]})
