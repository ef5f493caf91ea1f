"""StepEvents over the real publisher and reader: what a step's live readers see."""

from __future__ import annotations

import pytest

from lash_tasks.events.emitter import StepEvents, StepEventsFactory
from lash_tasks.events.publisher import RedisEventPublisher
from lash_tasks.events.redis_source import RedisEventSource
from lash_tasks.events.sources import read
from lash_tasks.events.vocabulary import SessionEvent, TextDelta
from lash_tasks.settings import Settings

pytestmark = pytest.mark.redis


def committed_text(events: list[SessionEvent]) -> str:
    """What a reader keeps: deltas of attempts that committed, none of discarded ones."""
    committed = {e.attempt for e in events if e.type == "step_committed"}
    discarded = {e.attempt for e in events if e.type == "step_discarded"}
    assert not committed & discarded
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.attempt in committed)


def test_a_step_streams_its_answer_then_commits_it(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """A step's events arrive in call order with its ids; the deltas joined equal the
    committed answer; with Redis the commit draft carries no events."""
    step = StepEvents(publisher, False, session_id, "turn-1", 0)
    step.turn_started(["in-1"])
    for piece in ["The ", "answer ", "is 42"]:
        step.text_delta(piece)
    step.tool_call_started("c1", "calculator")
    step.tool_call_finished("c1", "calculator", 7, "division by zero")
    outcome = {"status": "finished", "text": "The answer is 42"}
    assert step.commit_events(1, outcome, ["in-1"]) == ()
    step.committed()
    step.close()

    events = list(read(source, session_id, None, timeout=0.3))
    assert [e.type for e in events] == [
        "turn_started",
        "text_delta",
        "text_delta",
        "text_delta",
        "tool_call_started",
        "tool_call_finished",
        "step_committed",
        "turn_finished",
    ]
    assert {(e.session_id, e.turn_id, e.step, e.attempt) for e in events} == {
        (session_id, "turn-1", 0, step.attempt)
    }
    finished = events[-1]
    assert finished.type == "turn_finished" and finished.input_ids == ("in-1",)
    assert committed_text(events) == outcome["text"]
    failed = events[5]
    assert failed.type == "tool_call_finished" and failed.error == "division by zero"


def test_a_discarded_attempt_names_itself_and_its_deltas_do_not_count(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """A discarded attempt publishes step_discarded with its attempt id and no
    step_committed; the retry's deltas alone make the answer."""
    factory = StepEventsFactory(publisher, database_log=False)
    lost = factory.for_step(session_id, "turn-1", 0)
    lost.text_delta("half an ans")
    lost.commit_events(1, {"status": "finished", "text": "x"})
    lost.discarded("lease_lost")
    retry = factory.for_step(session_id, "turn-1", 0)
    assert retry.attempt != lost.attempt
    retry.text_delta("whole answer")
    retry.commit_events(1, {"status": "finished", "text": "whole answer"})
    retry.committed()
    retry.close()

    events = list(read(source, session_id, None, timeout=0.3))
    discarded = [e for e in events if e.type == "step_discarded"]
    assert len(discarded) == 1 and discarded[0].attempt == lost.attempt
    assert discarded[0].reason == "lease_lost"
    assert [e.attempt for e in events if e.type == "step_committed"] == [retry.attempt]
    assert committed_text(events) == "whole answer"


def test_the_factory_follows_the_settings() -> None:
    """With LASH_REDIS_URL steps publish live; without it they log committed events in the
    database instead (and publish nothing)."""
    with_redis = StepEventsFactory.from_settings(
        Settings.from_env({"LASH_REDIS_URL": "redis://127.0.0.1:6379/7", "LASH_HOME": "/tmp"})
    )
    embedded = StepEventsFactory.from_settings(Settings.from_env({"LASH_HOME": "/tmp"}))
    assert isinstance(with_redis.publisher, RedisEventPublisher)
    assert not with_redis.database_log
    assert embedded.database_log
    step = embedded.for_step("s", "t", 0)
    step.text_delta("x")
    records = step.commit_events(3)
    assert [r["type"] for r in records] == ["step_committed"]
    assert records[0]["head_revision"] == 3
    with_redis.close()
