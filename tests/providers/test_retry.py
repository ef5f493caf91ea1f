from __future__ import annotations

import httpx
import pytest

from lash_tasks.errors import ProviderError
from lash_tasks.providers.http_send import (
    DEFAULT_TIMEOUT,
    RetryPolicy,
    body_excerpt,
    is_retryable_status,
    new_http_client,
    parse_retry_after,
    send_with_retry,
)

SECRET = "sk-test-0123456789abcdefSECRET"


def test_backoff_doubles_and_caps() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    delays = [policy.retry_delay(attempt, None, 0.5) for attempt in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_spreads_both_ways_and_stays_pure() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=20.0, jitter=0.25)
    assert policy.retry_delay(1, None, 0.0) == pytest.approx(0.75)
    assert policy.retry_delay(1, None, 0.5) == pytest.approx(1.0)
    assert policy.retry_delay(1, None, 0.999999) == pytest.approx(1.25, abs=1e-5)
    assert policy.retry_delay(3, None, 0.3) == policy.retry_delay(3, None, 0.3)


def test_jitter_never_exceeds_max_delay() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, jitter=0.5)
    assert policy.retry_delay(10, None, 0.999) == 4.0


def test_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy()
    assert policy.retry_delay(1, 7.0, 0.9) == 7.0
    assert policy.retry_delay(3, 0.0, 0.9) == 0.0
    assert policy.retry_delay(1, -2.0, 0.9) == 0.0


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"jitter": 1.5}])
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retryable_statuses() -> None:
    assert [
        s for s in (400, 401, 403, 404, 408, 422, 429, 500, 502, 503, 529) if is_retryable_status(s)
    ] == [408, 429, 500, 502, 503, 529]


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"}), 0.0) == 3.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500"}), 0.0) == 1.5
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after(httpx.Headers({"Retry-After": date}), 1445412480.0) == 10.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"}), 0.0) is None
    assert parse_retry_after(httpx.Headers(), 0.0) is None


def test_body_excerpt_redacts_then_truncates() -> None:
    body = ("x" * 495 + SECRET + "y" * 100).encode()
    excerpt = body_excerpt(body, [SECRET])
    assert len(excerpt) == 500
    assert SECRET[:5] not in excerpt
    assert excerpt.startswith("x" * 495 + "[RED")


def test_default_client_timeouts() -> None:
    assert DEFAULT_TIMEOUT.connect == 10.0
    assert DEFAULT_TIMEOUT.read == 120.0
    client = new_http_client()
    try:
        assert client.timeout.read == 120.0
    finally:
        client.close()


def _send(handler: httpx.MockTransport, **kwargs: object) -> tuple[httpx.Response, list[float]]:
    sleeps: list[float] = []
    with httpx.Client(transport=handler) as client:
        request = client.build_request("POST", "http://127.0.0.1:9/x", json={})
        response = send_with_retry(
            client,
            request,
            provider="test",
            policy=RetryPolicy(max_attempts=3, jitter=0.0),
            secrets=[SECRET],
            sleep=sleeps.append,
            **kwargs,  # type: ignore[arg-type]
        )
    return response, sleeps


def test_transport_errors_are_retried_then_succeed() -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"ok": True})

    response, sleeps = _send(httpx.MockTransport(handle))
    assert response.json() == {"ok": True}
    assert sleeps == [0.5, 1.0]


def test_transport_errors_exhausted_are_retryable() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for {SECRET}", request=request)

    with pytest.raises(ProviderError) as caught:
        _send(httpx.MockTransport(handle))
    assert caught.value.retryable
    assert caught.value.status is None
    assert caught.value.details["attempts"] == 3
    assert SECRET not in str(caught.value)


def test_long_retry_after_is_handed_back_not_slept() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"}, text="slow down")

    with pytest.raises(ProviderError) as caught:
        _send(httpx.MockTransport(handle))
    assert caught.value.retryable
    assert caught.value.retry_after == 3600.0
    assert caught.value.details["attempts"] == 1


def test_invalid_endpoint_is_not_retried() -> None:
    sleeps: list[float] = []
    with httpx.Client() as client:
        request = client.build_request("POST", "ftp://127.0.0.1/x", json={})
        with pytest.raises(ProviderError) as caught:
            send_with_retry(
                client, request, provider="test", policy=RetryPolicy(), sleep=sleeps.append
            )
    assert not caught.value.retryable
    assert sleeps == []
