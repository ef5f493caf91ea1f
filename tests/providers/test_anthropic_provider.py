from __future__ import annotations

import json

import httpx
import pytest

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmRequest, Message, ToolCall, Usage
from lash_tasks.providers import AnthropicMessagesProvider, LlmProvider, RetryPolicy

from ._server import LocalServer, Reply, fixture_bytes

API_KEY = "sk-ant-api03-test-0123456789abcdefXYZ"
REQUEST = LlmRequest(
    model="claude-3-5-sonnet-20241022",
    system="Be brief.",
    messages=(Message("user", "Weather in Paris?"),),
)


def _provider(
    server: LocalServer, client: httpx.Client, sleeps: list[float], **kwargs: object
) -> AnthropicMessagesProvider:
    return AnthropicMessagesProvider(
        server.url,
        API_KEY,
        client=client,
        sleep=sleeps.append,
        **kwargs,  # type: ignore[arg-type]
    )


def test_is_an_llm_provider(http_client: httpx.Client) -> None:
    provider = AnthropicMessagesProvider(api_key=API_KEY, client=http_client)
    assert isinstance(provider, LlmProvider)
    assert provider.url == "https://api.anthropic.com/v1/messages"
    assert (
        AnthropicMessagesProvider("http://h/v1", client=http_client).url == "http://h/v1/messages"
    )


def test_normal_answer(server: LocalServer, http_client: httpx.Client, sleeps: list[float]) -> None:
    server.enqueue(Reply.fixture("anthropic_messages_tool_use.json"))
    deltas: list[str] = []
    answer = _provider(server, http_client, sleeps).complete(REQUEST, deltas.append)

    assert answer.text == "I'll look up the weather in Paris and the local time."
    assert answer.tool_calls[0] == ToolCall(
        "toolu_01A09q90qw90lq917835lq9", "get_weather", '{"city": "Paris", "unit": "celsius"}'
    )
    assert answer.usage == Usage(384, 98)
    assert deltas == [answer.text]
    (sent,) = server.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json()["system"] == "Be brief."
    assert sent.json()["max_tokens"] == 4096


def test_429_with_retry_after_then_success(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(
        Reply.json(
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
            status=429,
            headers={"retry-after": "3"},
        ),
        Reply.fixture("anthropic_messages_text.json"),
    )
    answer = _provider(server, http_client, sleeps).complete(REQUEST)
    assert answer.text == "Hi! My name is Claude."
    assert sleeps == [3.0]


def test_503_exhausted_is_retryable_with_status(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(*[Reply(status=503, body=b"unavailable") for _ in range(2)])
    provider = _provider(server, http_client, sleeps, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)
    assert caught.value.status == 503
    assert caught.value.retryable
    assert len(sleeps) == 1
    assert len(server.requests) == 2


def test_529_overloaded_is_retried(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(
        Reply.fixture("anthropic_error_overloaded.json", status=529),
        Reply.fixture("anthropic_messages_text.json"),
    )
    assert _provider(server, http_client, sleeps).complete(REQUEST).text.startswith("Hi")
    assert len(sleeps) == 1


def test_401_is_final_and_never_shows_the_key(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {API_KEY}"},
    }
    server.enqueue(Reply.json(body, status=401))
    provider = _provider(server, http_client, sleeps)
    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)
    error = caught.value
    assert error.status == 401
    assert not error.retryable
    assert sleeps == []
    assert "authentication_error" in error.body_excerpt
    for text in (str(error), error.message, error.body_excerpt, repr(error)):
        assert API_KEY not in text
    assert API_KEY not in json.dumps(error.to_dict())


def test_repr_hides_key(http_client: httpx.Client) -> None:
    provider = AnthropicMessagesProvider(api_key=API_KEY, client=http_client)
    assert repr(provider) == (
        "AnthropicMessagesProvider(base_url='https://api.anthropic.com', api_key='***', "
        "stream=False)"
    )


def test_streaming_answer(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    """Over HTTP, written in pieces: deltas as they arrive, the tool call assembled, and a
    request that asks for an event stream."""
    server.enqueue(Reply.fixture("anthropic_messages_stream.sse", chunks=9))
    deltas: list[str] = []
    answer = _provider(server, http_client, sleeps, stream=True).complete(REQUEST, deltas.append)

    assert deltas == ["Okay", ", let's check", " the weather for San Francisco, CA:"]
    assert answer.text == "".join(deltas)
    assert answer.tool_calls[0].name == "get_weather"
    assert json.loads(answer.tool_calls[0].arguments) == {
        "location": "San Francisco, CA",
        "unit": "fahrenheit",
    }
    assert answer.usage == Usage(472, 89)
    assert answer.finish_reason == "tool_use"
    (sent,) = server.requests
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.json()["stream"] is True


def test_streaming_529_then_stream(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    """An overloaded status before the stream starts is retried like any other call."""
    server.enqueue(
        Reply.fixture("anthropic_error_overloaded.json", status=529),
        Reply.fixture("anthropic_messages_stream.sse"),
    )
    answer = _provider(server, http_client, sleeps, stream=True).complete(REQUEST)
    assert answer.finish_reason == "tool_use"
    assert len(sleeps) == 1


def test_streaming_error_event_is_retryable_and_not_resent(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    """An error event after text went out is not retried here (the text cannot be taken
    back); it surfaces as a retryable error for the step to handle."""
    server.enqueue(Reply.fixture("anthropic_messages_stream_overloaded.sse"))
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        _provider(server, http_client, sleeps, stream=True).complete(REQUEST, deltas.append)
    assert caught.value.retryable
    assert deltas == ["Let me"]
    assert len(server.requests) == 1


def test_streaming_connection_dropped_mid_body_is_retryable(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    """A connection cut mid-stream is a retryable `stream broke` error."""
    server.enqueue(
        Reply(
            body=fixture_bytes("anthropic_messages_stream_cut.sse"),
            truncate=True,
            content_type="text/event-stream",
        )
    )
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        _provider(server, http_client, sleeps, stream=True).complete(REQUEST, deltas.append)
    assert caught.value.retryable
    assert "stream broke" in caught.value.message
    assert deltas == ["The answer is"]


def test_streaming_request_answered_with_json(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    """A gateway that ignores `stream` and answers one JSON body still gives the answer."""
    server.enqueue(Reply.fixture("anthropic_messages_text.json"))
    deltas: list[str] = []
    answer = _provider(server, http_client, sleeps, stream=True).complete(REQUEST, deltas.append)
    assert answer.text == "Hi! My name is Claude."
    assert deltas == [answer.text]
