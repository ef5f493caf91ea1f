"""Client.wait_for_input and Client.events: woken by events, confirmed by the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lash_tasks.attachments import FilesystemBlobStore
from lash_tasks.client import Client, TurnAnswer
from lash_tasks.errors import InvalidCursor, ValidationError, WaitTimeout
from lash_tasks.events import waiting
from lash_tasks.events.emitter import StepEvents
from lash_tasks.events.publisher import NullEventPublisher, RedisEventPublisher
from lash_tasks.ingress import EnqueueTurnPayload, operations
from lash_tasks.runtime.lash_core import LeaseTimings
from lash_tasks.settings import Settings
from lash_tasks.store.migrate import upgrade
from lash_tasks.store.records import Lease
from lash_tasks.store.store import Store
from tests.events.private_redis import PrivateRedis
from tests.runtime.conftest import Harness
from tests.store_conformance.support import unchanged


def make_client(tmp_path: Path, redis_url: str | None) -> Client:
    url = f"sqlite:///{tmp_path / 'lash.db'}"
    upgrade(url)
    env = {"LASH_HOME": str(tmp_path), "LASH_DATABASE_URL": url}
    if redis_url is not None:
        env["LASH_REDIS_URL"] = redis_url
    return Client(Store.from_url(url), Settings.from_env(env))


def enqueue(client: Client, session_id: str, text: str = "hello") -> str:
    """Record an input without poking (no worker runs here; the test steps the turn)."""
    payload = EnqueueTurnPayload(session_id=session_id, text=text)
    return operations.enqueue_turn(client.store, payload).input_id


def run_turn(client: Client, tmp_path: Path, session_id: str) -> dict[str, Any]:
    """Run the session's turn in-process with the scripted LLM; returns its outcome."""
    harness = Harness(client.store, FilesystemBlobStore(tmp_path / "blobs"), tmp_path)
    core, _ = harness.core(lease=LeaseTimings(30_000, 10_000))
    result = harness.run_until_settled(core, session_id)
    assert result.outcome is not None
    return result.outcome


def wait_in_thread(client: Client, sid: str, input_id: str, **options: Any) -> dict[str, Any]:
    box: dict[str, Any] = {}

    def wait() -> None:
        try:
            box["answer"] = client.wait_for_input(sid, input_id, **options)
        except Exception as exc:
            box["error"] = exc
        box["at"] = time.monotonic()

    box["thread"] = threading.Thread(target=wait)
    box["thread"].start()
    return box


@pytest.fixture
def redis_client(tmp_path: Path, redis_url: str) -> Iterator[Client]:
    client = make_client(tmp_path, redis_url)
    yield client
    client.close()


@pytest.mark.redis
def test_a_waiter_is_woken_by_the_turn_end_event_not_by_polling(
    redis_client: Client, tmp_path: Path, session_id: str
) -> None:
    """With events flowing, wait_for_input returns right after turn_finished (one confirming
    read), long before its polling interval."""
    client = redis_client
    client.create_session(session_id)
    input_id = enqueue(client, session_id)
    publisher = RedisEventPublisher(client.settings.redis_url or "")
    box = wait_in_thread(client, session_id, input_id, timeout=30, poll=10.0)
    time.sleep(0.3)  # the waiter is blocked on the stream
    step = StepEvents(publisher, False, session_id, "turn", 0)
    step.turn_started([input_id])
    outcome = run_turn(client, tmp_path, session_id)  # the database says completed
    step.commit_events(1, outcome, [input_id])
    step.committed()
    step.close()
    published = time.monotonic()
    box["thread"].join(20)
    publisher.close()
    answer = box["answer"]
    assert isinstance(answer, TurnAnswer) and answer.state == "completed"
    assert answer.text == outcome["text"]
    assert box["at"] - published < 2.0  # polling would have taken 10 s


@pytest.mark.redis
def test_a_waiter_that_reads_the_answer_first_still_shows_the_closing_events(
    redis_client: Client, tmp_path: Path, session_id: str
) -> None:
    """When the database re-read sees the answer before the turn's closing events arrive,
    the waiter waits a moment for them: its reader sees the turn end either way."""
    client = redis_client
    client.create_session(session_id)
    input_id = enqueue(client, session_id)
    source = client.event_source
    cursor = source.tail(session_id)
    publisher = RedisEventPublisher(client.settings.redis_url or "")
    seen: list[str] = []
    box: dict[str, Any] = {}

    def wait() -> None:
        box["answer"] = waiting.wait_for_input(
            client.store,
            source,
            session_id,
            input_id,
            timeout=30,
            cursor=cursor,
            on_event=lambda event: seen.append(event.type),
            poll_s=0.05,
            recheck_s=0.05,
        )

    waiter = threading.Thread(target=wait)
    waiter.start()
    step = StepEvents(publisher, False, session_id, "turn", 0)
    step.turn_started([input_id])
    deadline = time.monotonic() + 10
    while "turn_started" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
    outcome = run_turn(client, tmp_path, session_id)  # the re-read will see it first
    time.sleep(0.3)
    step.commit_events(1, outcome, [input_id])
    step.committed()
    step.close()
    waiter.join(20)
    publisher.close()
    assert box["answer"].state == "completed"
    assert seen[0] == "turn_started" and seen[-1] == "turn_finished", seen


@pytest.mark.redis
def test_a_cancel_wakes_its_waiter_through_the_input_cancelled_event(
    redis_client: Client, session_id: str
) -> None:
    """Client.cancel_input publishes input_cancelled; a waiter returns `cancelled` at once."""
    client = redis_client
    client.create_session(session_id)
    input_id = enqueue(client, session_id)
    events = client.events(session_id, cursor=client.event_tail(session_id), timeout=5)
    box = wait_in_thread(client, session_id, input_id, timeout=30, poll=10.0)
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    assert client.cancel_input(session_id, input_id).outcome == "cancelled"
    box["thread"].join(20)
    assert box["answer"].state == "cancelled"
    assert box["at"] - cancelled_at < 2.0
    first = next(events)
    assert first.type == "input_cancelled" and first.input_id == input_id


def test_the_waiter_polls_the_database_when_events_are_unreachable(
    own_redis: PrivateRedis, tmp_path: Path
) -> None:
    """With Redis down, wait_for_input still returns the answer, by polling the database."""
    own_redis.stop()
    client = make_client(tmp_path, own_redis.url)
    client.create_session("s-poll")
    input_id = enqueue(client, "s-poll")
    box = wait_in_thread(client, "s-poll", input_id, timeout=30, poll=0.05)
    run_turn(client, tmp_path, "s-poll")
    box["thread"].join(20)
    client.close()
    assert box["answer"].state == "completed"


def test_without_redis_the_waiter_reads_the_database_event_log(tmp_path: Path) -> None:
    """On the embedded default a turn_finished committed to the event log wakes the waiter
    long before its polling interval."""
    client = make_client(tmp_path, None)
    client.create_session("s-db")
    input_id = enqueue(client, "s-db")
    box = wait_in_thread(client, "s-db", input_id, timeout=30, poll=10.0)
    time.sleep(0.3)
    outcome = run_turn(client, tmp_path, "s-db")
    # The committed events a wired step driver writes with its final commit.
    store = client.store
    lease = store.leases.try_claim("s-db", "test", "inc", 30_000)
    record = store.sessions.record("s-db")
    assert isinstance(lease, Lease)
    step = StepEvents(NullEventPublisher(), True, "s-db", "turn", 0)
    store.commits.commit(
        unchanged(
            "s-db",
            record.head_revision,
            lease.fence,
            record.leaf_node_id,
            events=step.commit_events(record.head_revision + 1, outcome, [input_id]),
        )
    )
    committed = time.monotonic()
    box["thread"].join(20)
    client.close()
    assert box["answer"].state == "completed"
    assert box["at"] - committed < 2.0


def test_a_wait_that_runs_out_is_a_typed_timeout(tmp_path: Path) -> None:
    """An input still pending when the timeout passes raises WaitTimeout naming its state."""
    client = make_client(tmp_path, None)
    client.create_session("s-slow")
    input_id = enqueue(client, "s-slow")
    with pytest.raises(WaitTimeout, match="still pending"):
        client.wait_for_input("s-slow", input_id, timeout=0.3)
    client.close()


def test_bad_cursor_and_cancel_without_a_target_are_refused(tmp_path: Path) -> None:
    """Client.events with a malformed cursor, and cancel_input with nothing to cancel, raise
    ValidationError subtypes and write nothing."""
    client = make_client(tmp_path, None)
    client.create_session("s-bad")
    enqueue(client, "s-bad")
    with pytest.raises(InvalidCursor):
        client.events("s-bad", cursor="17-0")
    with pytest.raises(ValidationError, match="needs an input_id"):
        client.cancel_input("s-bad")
    assert [i.state for i in client.store.inputs.list_all("s-bad")] == ["pending"]
    assert client.store.maintenance.count_rows("lash_session_events") == 0
    client.close()


@pytest.mark.redis
def test_events_resume_from_a_cursor(redis_client: Client, session_id: str) -> None:
    """Client.events from a cursor yields only later events, each with its cursor."""
    publisher = redis_client.publisher
    for text in ("a", "b", "c"):
        StepEvents(publisher, False, session_id, "t", 0).text_delta(text)
    assert publisher.flush(5)
    everything = list(redis_client.events(session_id, timeout=0.3))
    later = list(redis_client.events(session_id, cursor=everything[0].cursor, timeout=0.3))
    assert [e.cursor for e in later] == [e.cursor for e in everything[1:]]
