"""Turn identity outlives vacuum: ids reused by callers or by SQLite rowids never freeze a
session, on both dialects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from lash_tasks.machine import CommitDraft, GraphAppend, Message, Node, QueuedWorkDraft
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputDraft, InputState, Lease
from lash_tasks.store.store import Store
from tests.runtime.conftest import Harness

SQUAT = Message("user", "squatter").to_json()


class Crash(Exception):
    """The worker process dies here (fault injection)."""


def _enqueue_as(harness: Harness, sid: str, input_id: str, text: str) -> None:
    # What `enqueue_turn(input_id=...)` writes: the source key follows the caller's id.
    harness.store.inputs.enqueue(
        InputDraft(sid, f"host:{input_id}", {"text": text}, input_id=input_id)
    )


def _assert_settled(store: Store, sid: str) -> None:
    assert {i.state for i in store.inputs.list_all(sid)} <= {InputState.COMPLETED}
    assert store.leases.state(sid)[0] is None
    assert store.turns.active(sid) is None


def _wake(key: str) -> QueuedWorkDraft:
    return QueuedWorkDraft(
        source_key=key,
        work_class="turn_work",
        payloads=({"type": "process_wake", "process_id": "p1", "summary": key},),
    )


def test_input_id_reused_after_vacuum_starts_a_new_turn(harness: Harness) -> None:
    """A caller's input id used again once vacuum removed the first row runs a fresh turn,
    and the session keeps answering later inputs."""
    core, llm = harness.core()
    sid = harness.session()
    _enqueue_as(harness, sid, "msg-1", "first")
    first = harness.run_until_settled(core, sid)
    assert harness.store.maintenance.vacuum(input_retention_ms=0).removed_inputs == 1

    _enqueue_as(harness, sid, "msg-1", "second")
    second = harness.run_until_settled(core, sid)
    assert second.outcome is not None and second.outcome["text"] == "echo: second"
    assert second.turn_id != first.turn_id
    third = harness.turn(core, sid, "third")
    assert third.outcome is not None and third.outcome["text"] == "echo: third"

    texts = [m.text for m in harness.messages(sid)]
    assert texts == ["first", "echo: first", "second", "echo: second", "third", "echo: third"]
    assert llm.call_count == 3
    _assert_settled(harness.store, sid)


def test_queued_work_source_key_reused_after_vacuum_starts_a_new_turn(harness: Harness) -> None:
    """Queued turn work enqueued again under a vacuumed source key (same batch id; on
    SQLite the same reused enqueue_seq) runs a fresh turn instead of failing forever."""
    core, llm = harness.core()
    sid = harness.session()
    harness.store.queue.enqueue(sid, _wake("wake-1"))
    first = harness.run_until_settled(core, sid)
    assert harness.store.maintenance.vacuum().removed_queued_work == 1

    harness.store.queue.enqueue(sid, _wake("wake-1"))
    second = harness.run_until_settled(core, sid)
    assert second.turn_id != first.turn_id
    assert second.outcome is not None and second.outcome["status"] == "finished"
    assert [m.role for m in harness.messages(sid)] == ["user", "assistant"] * 2
    assert llm.call_count == 2
    assert harness.store.queue.list_batches(sid) == []
    _assert_settled(harness.store, sid)


def test_unknown_command_reused_after_vacuum_is_settled_again(harness: Harness) -> None:
    """An unknown session command enqueued again under a vacuumed source key is recorded
    and settled again (its event node gets a new id); the next input still runs."""
    core, _ = harness.core()
    sid = harness.session()
    draft = QueuedWorkDraft(
        source_key="cmd-1",
        work_class="session_command",
        payloads=({"type": "session_command", "command": "frobnicate"},),
    )
    harness.store.queue.enqueue(sid, draft)
    assert run_step(core, sid).status == "command"
    harness.store.maintenance.vacuum()
    harness.store.queue.enqueue(sid, draft)
    assert run_step(core, sid).status == "command"
    answer = harness.turn(core, sid, "after the commands")
    assert answer.outcome is not None and answer.outcome["text"] == "echo: after the commands"
    events = [n for n in harness.store.sessions.load(sid).graph.nodes.values() if n.kind == "event"]
    assert [e.payload["command"] for e in events] == ["frobnicate", "frobnicate"]
    _assert_settled(harness.store, sid)


def test_same_input_id_in_two_sessions_both_run(harness: Harness) -> None:
    """Input ids are unique per session: the same caller id in two sessions is two inputs."""
    core, _ = harness.core()
    for sid, text in (("s1", "to one"), ("s2", "to two")):
        harness.session(sid)
        _enqueue_as(harness, sid, "msg-1", text)
    for sid, text in (("s1", "to one"), ("s2", "to two")):
        answer = harness.run_until_settled(core, sid)
        assert answer.outcome is not None and answer.outcome["text"] == f"echo: {text}"
        row = harness.store.inputs.get(sid, "msg-1")
        assert row is not None and row.state == InputState.COMPLETED
        assert row.input["text"] == text
        _assert_settled(harness.store, sid)


def test_stopped_turn_whose_nodes_are_refused_still_ends(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When even the recorded stop cannot be appended (its node ids are taken), the turn ends
    stopped(runtime_error) with no graph change, its inputs settled and the reason named."""
    core, _ = harness.core()
    store = harness.store
    sid = harness.session()
    harness.turn(core, sid, "before")
    harness.enqueue(sid, "doomed")

    def dying_call(request: Any, **options: Any) -> Any:
        raise Crash("killed during the LLM call")

    monkeypatch.setattr(core.llm, "complete", dying_call)
    with pytest.raises(Crash):
        run_step(core, sid)
    monkeypatch.undo()
    active = store.turns.active(sid)
    assert active is not None
    with store.database.engine.begin() as conn:  # the dead worker's effect lease has run out
        conn.execute(update(t.effect_journal).values(lease_expires_at=0))
    # Something already holds the ids the turn's nodes would get (e.g. rows an old build
    # wrote under the same turn id): every append of this turn is refused.
    record = store.sessions.record(sid)
    squatters = [
        Node(f"{active.turn_id}.0.{position}", record.leaf_node_id, "message", SQUAT, "t0")
        for position in range(3)
    ]
    lease = store.leases.try_claim(sid, "operator", "inc-1")
    assert isinstance(lease, Lease)
    store.commits.commit(
        CommitDraft(
            sid,
            record.head_revision,
            lease.fence,
            GraphAppend(tuple(squatters), record.leaf_node_id),
            release_lease=True,
        )
    )
    revision = store.sessions.record(sid).head_revision

    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "runtime_error")
    assert "already" in result.outcome["text"]
    assert store.sessions.record(sid).head_revision == revision + 1
    assert [m.text for m in harness.messages(sid)] == ["before", "echo: before"]
    stamped = store.turns.result(sid, active.turn_id)
    assert stamped is not None and stamped["outcome"] == result.outcome
    follow = harness.turn(core, sid, "after")
    assert follow.outcome is not None and follow.outcome["text"] == "echo: after"
    _assert_settled(store, sid)
