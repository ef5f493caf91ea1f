from __future__ import annotations

import json
import socket

import httpx
import pytest

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmRequest, Message, ToolCall, Usage
from lash_tasks.providers import LlmProvider, OpenAIChatProvider, RetryPolicy

from ._server import LocalServer, Reply, fixture_bytes

API_KEY = "sk-test-openai-0123456789abcdefABCDEF"
REQUEST = LlmRequest(model="gpt-4o-mini", system="Be brief.", messages=(Message("user", "Hi"),))


def _provider(
    server: LocalServer, client: httpx.Client, sleeps: list[float], **kwargs: object
) -> OpenAIChatProvider:
    return OpenAIChatProvider(
        f"{server.url}/v1",
        API_KEY,
        client=client,
        sleep=sleeps.append,
        **kwargs,  # type: ignore[arg-type]
    )


def test_is_an_llm_provider(http_client: httpx.Client) -> None:
    provider = OpenAIChatProvider(api_key=API_KEY, client=http_client)
    assert isinstance(provider, LlmProvider)
    assert provider.url == "https://api.openai.com/v1/chat/completions"


def test_normal_answer(server: LocalServer, http_client: httpx.Client, sleeps: list[float]) -> None:
    server.enqueue(Reply.fixture("openai_chat_text.json"))
    deltas: list[str] = []
    answer = _provider(server, http_client, sleeps).complete(REQUEST, deltas.append)

    assert answer.text == "Hello! How can I assist you today?"
    assert answer.usage == Usage(19, 10)
    assert deltas == [answer.text]
    assert sleeps == []
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json()["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.json()["stream"] is False


def test_tool_calls_answer(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.fixture("openai_chat_tool_calls.json"))
    answer = _provider(server, http_client, sleeps).complete(REQUEST)
    assert [c.name for c in answer.tool_calls] == ["get_weather", "get_time"]


def test_429_with_retry_after_then_success(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(
        Reply.json({"error": {"message": "Rate limit"}}, status=429, headers={"Retry-After": "2"}),
        Reply.fixture("openai_chat_text.json"),
    )
    answer = _provider(server, http_client, sleeps).complete(REQUEST)
    assert answer.text.startswith("Hello")
    assert sleeps == [2.0]
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body


def test_503_exhausted_is_retryable_with_status(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(*[Reply(status=503, body=b"upstream unavailable") for _ in range(4)])
    provider = _provider(server, http_client, sleeps, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)
    error = caught.value
    assert error.status == 503
    assert error.retryable
    assert error.body_excerpt == "upstream unavailable"
    assert len(server.requests) == 4
    assert len(sleeps) == 3
    assert all(0.0 <= delay <= 20.0 for delay in sleeps)
    assert sleeps[0] < sleeps[2]


def test_401_is_final_and_never_shows_the_key(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    # Worst case: a server that echoes the full key back in its error.
    echo = {"error": {"message": f"Incorrect API key provided: {API_KEY}", "code": "invalid"}}
    server.enqueue(Reply.json(echo, status=401))
    provider = _provider(server, http_client, sleeps)
    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)
    error = caught.value
    assert error.status == 401
    assert not error.retryable
    assert sleeps == []
    assert len(server.requests) == 1
    assert "Incorrect API key provided: [REDACTED]" in error.body_excerpt
    for text in (str(error), error.message, error.body_excerpt, repr(error)):
        assert API_KEY not in text
    assert API_KEY not in json.dumps(error.to_dict())
    assert API_KEY not in repr(provider)


def test_400_is_not_retried(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.json({"error": {"message": "bad model"}}, status=400))
    with pytest.raises(ProviderError) as caught:
        _provider(server, http_client, sleeps).complete(REQUEST)
    assert caught.value.status == 400
    assert not caught.value.retryable
    assert len(server.requests) == 1


def test_malformed_ok_body_is_not_retried(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.fixture("openai_chat_malformed.json"))
    with pytest.raises(ProviderError) as caught:
        _provider(server, http_client, sleeps).complete(REQUEST)
    assert not caught.value.retryable
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_retryable(
    http_client: httpx.Client, sleeps: list[float]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIChatProvider(
        f"http://127.0.0.1:{port}/v1",
        API_KEY,
        client=http_client,
        retry=RetryPolicy(max_attempts=3),
        sleep=sleeps.append,
    )
    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)
    assert caught.value.retryable
    assert caught.value.status is None
    assert len(sleeps) == 2


def test_read_timeout_is_retried(server: LocalServer, sleeps: list[float]) -> None:
    server.enqueue(
        Reply.fixture("openai_chat_text.json", delay=1.0),
        Reply.fixture("openai_chat_text.json"),
    )
    timeout = httpx.Timeout(5.0, read=0.2)
    with httpx.Client(trust_env=False, timeout=timeout) as client:
        answer = _provider(server, client, sleeps).complete(REQUEST)
    assert answer.text.startswith("Hello")
    assert len(sleeps) == 1


def test_streaming_answer(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.fixture("openai_chat_stream.sse", chunks=7))
    deltas: list[str] = []
    provider = _provider(server, http_client, sleeps, stream=True)
    answer = provider.complete(REQUEST, deltas.append)

    assert deltas == ["Let me", " check the", " weather."]
    assert answer.text == "Let me check the weather."
    assert answer.tool_calls == (
        ToolCall("call_8fJ2kLmN0pQrStUvWxYz1234", "get_weather", '{"city":"Paris"}'),
    )
    assert answer.usage == Usage(71, 24)
    sent = server.requests[0]
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.json()["stream"] is True
    assert sent.json()["stream_options"] == {"include_usage": True}


def test_streaming_429_then_stream(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(
        Reply(status=429, body=b"{}", headers={"Retry-After": "1"}),
        Reply.fixture("openai_chat_stream.sse"),
    )
    answer = _provider(server, http_client, sleeps, stream=True).complete(REQUEST)
    assert answer.finish_reason == "tool_calls"
    assert sleeps == [1.0]


def test_streaming_cut_off_body_is_retryable(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.fixture("openai_chat_stream_cut.sse"))
    with pytest.raises(ProviderError) as caught:
        _provider(server, http_client, sleeps, stream=True).complete(REQUEST)
    assert caught.value.retryable
    assert len(server.requests) == 1


def test_streaming_connection_dropped_mid_body_is_retryable(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(
        Reply(
            body=fixture_bytes("openai_chat_stream_cut.sse"),
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


def test_streaming_server_that_answers_json(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.fixture("openai_chat_text.json"))
    deltas: list[str] = []
    answer = _provider(server, http_client, sleeps, stream=True).complete(REQUEST, deltas.append)
    assert answer.text == "Hello! How can I assist you today?"
    assert deltas == [answer.text]


def test_no_key_sends_no_authorization(
    server: LocalServer, http_client: httpx.Client, sleeps: list[float]
) -> None:
    server.enqueue(Reply.fixture("openai_chat_text.json"))
    provider = OpenAIChatProvider(f"{server.url}/v1/", client=http_client)
    provider.complete(REQUEST)
    assert "authorization" not in server.requests[0].headers
    assert server.requests[0].path == "/v1/chat/completions"


def test_repr_hides_key(http_client: httpx.Client) -> None:
    provider = OpenAIChatProvider("http://127.0.0.1:1/v1", API_KEY, client=http_client)
    assert repr(provider) == (
        "OpenAIChatProvider(base_url='http://127.0.0.1:1/v1', api_key='***', stream=False)"
    )
    assert API_KEY not in str(vars(provider).get("base_url"))


def test_close_leaves_injected_client_open(http_client: httpx.Client) -> None:
    OpenAIChatProvider(api_key=API_KEY, client=http_client).close()
    assert not http_client.is_closed
    own = OpenAIChatProvider(api_key=API_KEY)
    own.close()
    assert own._client.is_closed
