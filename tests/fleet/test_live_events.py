"""Live events from a real fleet: Celery worker processes streaming from a local LLM server
(OpenAI-compatible server-sent events, one word at a time) into Redis, read as `watch` and
the gateway read them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lash_tasks.bench.streaming_llm import StreamingLlmServer, echo_answer, words
from lash_tasks.client import Client
from lash_tasks.events.render import TranscriptRenderer
from lash_tasks.events.vocabulary import TURN_ENDS, SessionEvent, TextDelta
from tests.events.private_redis import private_redis
from tests.fleet.harness import Fleet

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

QUESTION = "one two three four five six"
ANSWER = echo_answer(QUESTION)


def committed_text(events: list[SessionEvent]) -> str:
    """What a reader keeps: the deltas of attempts that committed, none of the others."""
    committed = {e.attempt for e in events if e.type == "step_committed"}
    discarded = {e.attempt for e in events if e.type == "step_discarded"}
    assert not committed & discarded
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.attempt in committed)


def until_turn_ends(events: Iterator[SessionEvent]) -> list[SessionEvent]:
    seen = []
    for event in events:
        seen.append(event)
        if event.type in TURN_ENDS:
            break
    return seen


def streaming_fleet(
    fleet: Fleet, server: StreamingLlmServer, workers: int = 1, **env: str
) -> Client:
    """Workers (and the client) on the streaming LLM; live events on (Redis configured)."""
    fleet.extra_env.update(
        {
            "LASH_PROVIDER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "LASH_MODEL": "local-stream",
            **env,
        }
    )
    for index in range(workers):
        fleet.start_worker(f"w{index + 1}", concurrency=2)
    for process in fleet.processes:
        process.wait_ready()
    return fleet.client()


def committed_answer(client: Client, session_id: str, input_id: str) -> str:
    answer = client.wait_for_input(session_id, input_id, timeout=60)
    assert answer.state == "completed", answer
    return answer.text


@pytest.fixture
def server() -> Iterator[StreamingLlmServer]:
    with StreamingLlmServer(delta_delay_s=0.05) as llm:
        yield llm


def test_a_streamed_answer_arrives_in_deltas_before_the_turn_finishes(
    fleet: Fleet, server: StreamingLlmServer
) -> None:
    """The worker asks the LLM for a stream; a reader sees the answer as >= 3 deltas before
    `turn_finished`, and the deltas joined equal the committed text."""
    client = streaming_fleet(fleet, server)
    client.create_session("live1")
    input_id = client.enqueue_turn("live1", QUESTION)

    events = until_turn_ends(client.events("live1", None, timeout=60))

    types = [e.type for e in events]
    assert types[0] == "turn_started" and types[-1] == "turn_finished", types
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3 and types.index("text_delta") < types.index("turn_finished")
    assert committed_text(events) == ANSWER == committed_answer(client, "live1", input_id)
    assert events[-1].type == "turn_finished" and events[-1].outcome["text"] == ANSWER
    assert server.calls[0].request["stream"] is True
    assert {e.session_id for e in events} == {"live1"}
    client.close()


def test_a_reader_that_disconnects_mid_turn_resumes_from_its_cursor(
    fleet: Fleet, server: StreamingLlmServer
) -> None:
    """A reader that leaves after two deltas and comes back with its last cursor (after the
    turn ended) gets exactly the events it had not seen: together, what one reader that never
    left saw."""
    client = streaming_fleet(fleet, server)
    client.create_session("live2")
    input_id = client.enqueue_turn("live2", QUESTION)

    # Given: a reader that goes away mid-answer.
    first: list[SessionEvent] = []
    for event in client.events("live2", None, timeout=60):
        first.append(event)
        if sum(isinstance(e, TextDelta) for e in first) == 2:
            break
    cursor = first[-1].cursor
    assert cursor is not None
    committed_answer(client, "live2", input_id)

    # When: it comes back with its cursor; and another reads everything from the start.
    rest = until_turn_ends(client.events("live2", cursor, timeout=10))
    whole = until_turn_ends(client.events("live2", None, timeout=10))

    # Then: nothing missed, nothing twice.
    assert [e.cursor for e in first + rest] == [e.cursor for e in whole]
    assert first + rest == whole
    assert committed_text(first + rest) == ANSWER
    client.close()


def test_a_reader_whose_cursor_was_trimmed_gets_a_gap_and_the_view(
    fleet: Fleet, server: StreamingLlmServer
) -> None:
    """With a stream kept short (LASH_EVENTS_MAXLEN) and a long answer, a cursor from the
    turn's start is trimmed away by its end: resuming from it yields `gap` (trimmed) with the
    session view, then the kept events up to `turn_finished`."""
    long_answer = " ".join(f"w{i}" for i in range(400))
    server.answer = lambda _text: long_answer
    server.delta_delay_s = 0.0
    client = streaming_fleet(fleet, server, LASH_EVENTS_MAXLEN="50")
    client.create_session("live3")
    input_id = client.enqueue_turn("live3", "tell me a long story")
    started = next(iter(client.events("live3", None, timeout=60)))
    assert started.type == "turn_started" and started.cursor is not None
    assert committed_answer(client, "live3", input_id) == long_answer

    resumed = until_turn_ends(client.events("live3", started.cursor, timeout=10))

    gap = resumed[0]
    assert gap.type == "gap" and gap.reason == "trimmed"
    assert gap.view is not None and gap.view["session_id"] == "live3"
    assert gap.view["head_revision"] == client.store.sessions.record("live3").head_revision
    assert resumed[-1].type == "turn_finished" and resumed[-1].outcome["text"] == long_answer
    assert len(resumed) < len(words(long_answer)), "nothing was trimmed"
    client.close()


def test_a_worker_killed_mid_stream_leaves_one_committed_answer(
    fleet: Fleet, server: StreamingLlmServer
) -> None:
    """SIGKILL the worker streaming the answer: the reader sees the dead attempt's deltas
    never commit, the retry's deltas (on the other worker) commit, and exactly one
    `turn_finished` carries the answer."""
    server.delta_delay_s = 0.2
    # Production lease timing, as in test_crash_recovery: the survivor's heartbeat finds the
    # dead worker (3 missed beats) while its lease is still live, and pokes the session.
    # (With the fleet's 3 s test ttl the lease can expire first; then only the sweeper,
    # not running here, would re-poke it.)
    client = streaming_fleet(
        fleet, server, workers=2, LASH_LEASE_TTL_MS="30000", LASH_LEASE_RENEW_MS="10000"
    )
    client.create_session("live4")
    input_id = client.enqueue_turn("live4", QUESTION)

    events: list[SessionEvent] = []
    for event in client.events("live4", None, timeout=60):
        events.append(event)
        if sum(isinstance(e, TextDelta) for e in events) == 2:
            break
    owner, _, _ = client.store.leases.state("live4")
    (victim,) = [p for p in fleet.processes if p.owner_id == owner]
    victim.kill()
    killed_attempt = events[-1].attempt

    events += until_turn_ends(client.events("live4", events[-1].cursor, timeout=60))

    assert committed_answer(client, "live4", input_id) == ANSWER
    assert [e.type for e in events].count("turn_finished") == 1
    assert events[-1].type == "turn_finished" and events[-1].outcome["text"] == ANSWER
    committed = [e.attempt for e in events if e.type == "step_committed"]
    assert killed_attempt not in committed
    assert committed_text(events) == ANSWER
    # The retry streamed the whole answer again, after the dead attempt's deltas.
    retry = [e for e in events if isinstance(e, TextDelta) and e.attempt == committed[-1]]
    assert "".join(e.text for e in retry) == ANSWER
    assert client.store.maintenance.count_rows("lash_turn_commits", "live4") == 1
    # `watch` tells a person the dead attempt's printed text is void.
    renderer = TranscriptRenderer()
    shown = "".join(renderer.render(e) for e in events)
    assert "text above is void" in shown and shown.endswith("[finished]\n")
    client.close()


def test_without_redis_a_turn_still_commits_and_events_resume_when_it_returns(
    fleet: Fleet, server: StreamingLlmServer, tmp_path: Path
) -> None:
    """The events Redis (a private one) stops mid-turn: the turn commits all the same, the
    waiter falls back to the database; once Redis is back, the next turn's events flow, led
    by a `gap` for what was dropped meanwhile."""
    server.delta_delay_s = 0.1
    with private_redis(tmp_path) as events_redis:
        client = streaming_fleet(fleet, server, LASH_REDIS_URL=events_redis.url)
        client.create_session("live5")
        input_id = client.enqueue_turn("live5", QUESTION)
        first = next(e for e in client.events("live5", None, timeout=60) if e.type == "text_delta")

        # When: Redis goes away mid-answer.
        events_redis.stop()

        # Then: the turn commits; the waiter learns it from the database.
        assert committed_answer(client, "live5", input_id) == ANSWER

        # When: Redis is back (empty), and another turn runs.
        events_redis.start()
        time.sleep(1.2)  # past the publisher's back-off after its last failed send
        second = client.enqueue_turn("live5", "again please")
        events = until_turn_ends(client.events("live5", first.cursor, timeout=60))

        assert events[0].type == "gap"
        assert events[-1].type == "turn_finished"
        assert committed_text(events) == echo_answer("again please")
        assert committed_answer(client, "live5", second) == echo_answer("again please")
        client.close()
