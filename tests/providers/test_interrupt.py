"""An interrupt cuts an LLM call in flight: the provider raises at once, the server sees the
connection close, and nothing is retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lash_tasks.errors import Interrupted, LashError, LeaseLost
from lash_tasks.machine.messages import LlmRequest, LlmResponse, Message
from lash_tasks.providers import (
    AnthropicMessagesProvider,
    OpenAIChatProvider,
    RetryPolicy,
    ScriptedProvider,
    ScriptRule,
)
from lash_tasks.providers.interrupt import Interrupt
from lash_tasks.providers.llm_provider import LlmProvider

from ._server import LocalServer, Reply, fixture_bytes

REQUEST = LlmRequest(model="m", messages=(Message("user", "think hard"),))
STALL_S = 20.0
CUT_WITHIN_S = 1.0

# Each provider, built over the server with the client it makes itself (the one a worker uses).
PROVIDERS: dict[str, Callable[[LocalServer], LlmProvider]] = {
    "openai": lambda s: OpenAIChatProvider(f"{s.url}/v1", "sk-test", retry=RetryPolicy()),
    "openai-stream": lambda s: OpenAIChatProvider(
        f"{s.url}/v1", "sk-test", retry=RetryPolicy(), stream=True
    ),
    "anthropic": lambda s: AnthropicMessagesProvider(s.url, "sk-test", retry=RetryPolicy()),
}


@pytest.fixture
def opened() -> Iterator[list[LlmProvider]]:
    providers: list[LlmProvider] = []
    yield providers
    for provider in providers:
        provider.close()


def call_in_thread(
    provider: LlmProvider, interrupt: Interrupt
) -> tuple[threading.Thread, list[object]]:
    """Run `complete` in a thread; its answer or exception lands in the returned list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(provider.complete(REQUEST, interrupt=interrupt))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_request(server: LocalServer) -> None:
    deadline = time.monotonic() + 5
    while not server.requests:
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.01)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_interrupt_cuts_a_call_stalled_before_its_answer(
    name: str, server: LocalServer, opened: list[LlmProvider]
) -> None:
    """A server that sends nothing for 20 s: the interrupt ends the call within 1 s, raises
    `Interrupted`, and the server sees the client hang up; no second request is made."""
    server.enqueue(Reply.json({}, hold=STALL_S))
    provider = PROVIDERS[name](server)
    opened.append(provider)
    interrupt = Interrupt()
    thread, outcome = call_in_thread(provider, interrupt)
    wait_for_request(server)
    time.sleep(0.2)  # the client is now blocked reading the status line

    fired_at = time.monotonic()
    interrupt.fire(Interrupted("turn interrupted on request"))
    thread.join(timeout=CUT_WITHIN_S)

    assert not thread.is_alive(), "the call was not cut"
    assert time.monotonic() - fired_at < CUT_WITHIN_S
    assert len(outcome) == 1 and isinstance(outcome[0], Interrupted)
    deadline = time.monotonic() + 2
    while not server.hangups and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.hangups and server.hangups[0] - fired_at < CUT_WITHIN_S
    assert len(server.requests) == 1


def test_interrupt_cuts_a_stream_stalled_mid_answer(
    server: LocalServer, opened: list[LlmProvider]
) -> None:
    """A streamed answer that stops after its first bytes is cut too, mid-body."""
    body = fixture_bytes("openai_chat_stream.sse")
    server.enqueue(Reply(body=body, content_type="text/event-stream", hold=STALL_S, hold_after=40))
    provider = PROVIDERS["openai-stream"](server)
    opened.append(provider)
    interrupt = Interrupt()
    thread, outcome = call_in_thread(provider, interrupt)
    wait_for_request(server)
    time.sleep(0.3)

    interrupt.fire(Interrupted("turn interrupted on request"))
    thread.join(timeout=CUT_WITHIN_S)

    assert not thread.is_alive(), "the stream was not cut"
    assert len(outcome) == 1 and isinstance(outcome[0], Interrupted)
    assert len(server.requests) == 1


def test_interrupt_raises_the_error_it_was_fired_with(
    server: LocalServer, opened: list[LlmProvider]
) -> None:
    """Fired because the step's lease was lost, the cut call raises `LeaseLost` (retryable),
    not a cancellation the journal would keep."""
    server.enqueue(Reply.json({}, hold=STALL_S))
    provider = PROVIDERS["openai"](server)
    opened.append(provider)
    interrupt = Interrupt()
    thread, outcome = call_in_thread(provider, interrupt)
    wait_for_request(server)
    interrupt.fire(LeaseLost("lease lost"))
    thread.join(timeout=CUT_WITHIN_S)
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLost)


def test_fired_interrupt_sends_nothing(server: LocalServer, opened: list[LlmProvider]) -> None:
    """An interrupt that fired before the call starts: no request leaves the worker."""
    provider = PROVIDERS["anthropic"](server)
    opened.append(provider)
    interrupt = Interrupt()
    interrupt.fire(Interrupted("turn interrupted on request"))
    with pytest.raises(Interrupted):
        provider.complete(REQUEST, interrupt=interrupt)
    assert server.requests == []


def test_interrupt_ends_a_retry_backoff(server: LocalServer, opened: list[LlmProvider]) -> None:
    """Waiting out a 503 before retrying, the call gives up as soon as it is interrupted."""
    server.enqueue(Reply.json({"error": "busy"}, status=503, headers={"retry-after": "15"}))
    provider = OpenAIChatProvider(
        f"{server.url}/v1", "sk-test", retry=RetryPolicy(max_attempts=3, max_delay=30)
    )
    opened.append(provider)
    interrupt = Interrupt()
    thread, outcome = call_in_thread(provider, interrupt)
    wait_for_request(server)
    time.sleep(0.2)
    interrupt.fire(Interrupted("turn interrupted on request"))
    thread.join(timeout=CUT_WITHIN_S)
    assert not thread.is_alive(), "the backoff was not cut"
    assert len(outcome) == 1 and isinstance(outcome[0], Interrupted)
    assert len(server.requests) == 1


def test_uninterrupted_call_still_answers(server: LocalServer, opened: list[LlmProvider]) -> None:
    """With an interrupt that never fires, the abortable client answers as before."""
    server.enqueue(Reply.fixture("openai_chat_text.json", chunks=3))
    provider = PROVIDERS["openai"](server)
    opened.append(provider)
    answer = provider.complete(REQUEST, interrupt=Interrupt())
    assert isinstance(answer, LlmResponse)
    assert answer.text == "Hello! How can I assist you today?"


def test_scripted_delay_waits_on_the_interrupt() -> None:
    """The scripted provider's `delay_ms` ends when the interrupt fires, like a cut call."""
    provider = ScriptedProvider([ScriptRule(match="think", delay_ms=20_000)])
    interrupt = Interrupt()
    threading.Timer(0.2, interrupt.fire, args=(Interrupted("stop"),)).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        provider.complete(REQUEST, interrupt=interrupt)
    assert time.monotonic() - started < CUT_WITHIN_S


def test_interrupt_error_is_raised_as_a_fresh_copy() -> None:
    """Every thread that checks a fired interrupt raises its own copy of the error."""
    interrupt = Interrupt()
    interrupt.fire(Interrupted("stop", turn_id="t1"))
    raised: list[LashError] = []
    for _ in range(2):
        try:
            interrupt.check()
        except Interrupted as exc:
            raised.append(exc)
    assert len(raised) == 2 and raised[0] is not raised[1]
    assert raised[0].details == {"turn_id": "t1"} and raised[1].message == "stop"
