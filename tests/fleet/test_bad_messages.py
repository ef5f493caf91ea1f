"""Bad messages are rejected loudly, write nothing, and never stop a worker from serving."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery.result import AsyncResult

from lash_tasks.errors import MessageRejected
from lash_tasks.ingress import EnqueueTurnPayload, operations
from tests.fleet.harness import CeleryProcess, Fleet, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]


def _row_counts(fleet: Fleet) -> dict[str, int]:
    store = fleet.client().store
    tables = ("lash_sessions", "lash_session_leases", "lash_pending_inputs", "lash_graph_nodes")
    try:
        return {table: store.maintenance.count_rows(table) for table in tables}
    finally:
        store.close()


def assert_rejected(fleet: Fleet, worker: CeleryProcess, result: AsyncResult) -> str:
    """The task FAILED with MessageRejected, stored as JSON, not retried. Returns the reason."""
    with pytest.raises(MessageRejected) as raised:  # rebuilt as our type from the backend
        result.get(timeout=30)
    assert result.state == "FAILURE"
    raw = fleet.redis().get(f"celery-task-meta-{result.id}")
    assert raw is not None
    stored = json.loads(raw)  # what Flower and any other reader sees
    assert stored["status"] == "FAILURE", stored
    assert stored["result"]["exc_type"] == "MessageRejected", stored
    assert stored["result"]["exc_module"] == "lash_tasks.errors", stored
    assert stored["result"]["exc_message"] == [raised.value.message], stored
    expected = f"{result.id}] raised expected: MessageRejected("  # logged just after storing
    wait_until(lambda: expected in worker.log(), 10, "the worker to log the rejection")
    assert worker.log().count(f"[{result.id}] received") == 1  # ran once: never retried
    return raised.value.message


def test_bad_step_messages_are_rejected_and_write_nothing(fleet: Fleet) -> None:
    """Non-string, malformed and unknown session ids and a pickled poke: FAILURE, no rows."""
    worker = fleet.start_worker("w0", concurrency=2)
    worker.wait_ready()
    client = fleet.client()
    app = fleet.publisher()
    client.create_session("pickled")
    # Pending input and no poke: only an accepted step message could ever run it.
    waiting = operations.enqueue_turn(
        client.store, EnqueueTurnPayload(session_id="pickled", text="only via json")
    )
    before = _row_counts(fleet)
    assert before["lash_sessions"] == 1 and before["lash_session_leases"] == 0

    cases: list[tuple[Any, str, str]] = [
        (123, "invalid_session_id", "lash.session.step(123): session id must be a string"),
        ({"id": "x"}, "invalid_session_id", "lash.session.step({'id': 'x'}): session id must"),
        ("../etc", "invalid_session_id", "lash.session.step('../etc'): session id must be"),
        ("no-such-session", "session_not_found", "session 'no-such-session' does not exist"),
    ]
    for session_id, code, log_line in cases:
        reason = assert_rejected(fleet, worker, app.send_task("lash.session.step", (session_id,)))
        assert reason.startswith(f"lash.session.step({session_id!r}) rejected ({code}): "), reason
        assert log_line in worker.log()

    # A pickled message is refused before any task code runs (accept_content=['json']).
    app.send_task("lash.session.step", args=("pickled",), queue="lash.turns", serializer="pickle")
    refused = "Refusing to deserialize untrusted content of type pickle"
    wait_until(lambda: refused in worker.log(), 20, "the worker to refuse the pickled message")
    assert "The message has been ignored and discarded." in worker.log()
    assert worker.alive()
    assert _row_counts(fleet) == before
    assert client.store.leases.state("pickled") == (None, 0, None)
    row = client.store.inputs.get("pickled", waiting.input_id)
    assert row is not None and row.state == "pending"
    assert client.store.sessions.record("pickled").head_revision == 0
    # Refused for good: neither waiting in the queue nor held as unacknowledged.
    wait_until(
        lambda: fleet.queue_length("lash.turns") == 0 and fleet.redis().hlen("unacked") == 0,
        10,
        "the pickled message to be dropped",
    )

    # The worker keeps serving: the same session, poked properly, runs its turn.
    client.poke("pickled")
    answer = client.wait_for_input("pickled", waiting.input_id, timeout=30)
    assert answer.state == "completed" and answer.text == "echo: only via json"
    client.create_session("after")
    answer = client.wait_for_input("after", client.enqueue_turn("after", "still here"), timeout=30)
    assert answer.text == "echo: still here"
    assert "raised unexpected" not in worker.log()  # no task failed but the rejected ones
    app.close()
    client.close()


def test_invalid_ingress_payloads_are_rejected_naming_the_field(fleet: Fleet) -> None:
    """lash.ingress.* with a bad payload: FAILURE (MessageRejected) naming the field, no rows."""
    worker = fleet.start_worker("w0", concurrency=2)
    worker.wait_ready()
    client = fleet.client()
    app = fleet.publisher()
    client.create_session("target")
    before = _row_counts(fleet)

    cases: list[tuple[str, Any, str]] = [
        ("lash.ingress.enqueue_turn", {"session_id": "target"}, "text"),
        ("lash.ingress.enqueue_turn", {"session_id": "target", "text": ""}, "text"),
        ("lash.ingress.enqueue_turn", {"session_id": "bad id!", "text": "hi"}, "session_id"),
        ("lash.ingress.enqueue_turn", {"session_id": 7, "text": "hi"}, "session_id"),
        ("lash.ingress.enqueue_turn", {"session_id": "target", "text": "hi", "x": 1}, "x"),
        ("lash.ingress.enqueue_turn", "just a string", "must be a JSON object"),
        ("lash.ingress.enqueue_turn", {"session_id": "nobody", "text": "hi"}, "nobody"),
        ("lash.ingress.create_session", {"session_id": "bad id!"}, "session_id"),
        ("lash.ingress.create_session", {"session_id": "ok", "max_turns": 0}, "max_turns"),
        ("lash.ingress.create_session", {"session_id": "ok", "provider": "gemini"}, "provider"),
        ("lash.ingress.create_session", {"session_id": "ok", "tools": ["nope"]}, "tools"),
        (
            "lash.ingress.enqueue_turn",
            {"session_id": "target", "text": "hi", "branch_from": "nowhere"},
            "branch_from",
        ),
        (
            "lash.ingress.enqueue_turn",
            {"session_id": "target", "text": "hi", "reply_to": {"task": "t", "queue": "lash.x"}},
            "reply_to.queue",
        ),
        ("lash.ingress.cancel_input", {"session_id": "target", "interrupt": "later"}, "interrupt"),
    ]
    for task, payload, named in cases:
        reason = assert_rejected(fleet, worker, app.send_task(task, args=(payload,)))
        assert reason.startswith(f"{task} rejected ("), (payload, reason)
        assert named in reason, (payload, reason)
        assert f"rejected {task}: " in worker.log()

    assert _row_counts(fleet) == before
    assert client.store.inputs.list_all("target") == []
    # A rejected payload pokes nothing: no step ran (a step's result names its session).
    assert not [r for r in fleet.task_results() if "session_id" in (r.get("result") or {})]

    # A valid payload through the same task works.
    ok = app.send_task(
        "lash.ingress.enqueue_turn", args=({"session_id": "target", "text": "fine"},)
    ).get(timeout=30)
    assert ok["status"] == "enqueued", ok
    answer = client.wait_for_input("target", ok["input_id"], timeout=30)
    assert answer.text == "echo: fine"
    app.close()
    client.close()
