"""Delivery into a running turn: a process's result queued for the earliest safe boundary is
taken by the running turn at its next step; one queued for after the turn starts a new one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lash_tasks.machine import QueuedWorkDraft
from lash_tasks.runtime.step_driver import run_step
from tests.runtime.conftest import FAST_LEASE, Harness, wait_ms
from tests.runtime.test_interrupt import (
    SLOW_SECOND_CALL,
    interrupt_and_wait,
    step_in_thread,
    wait_for_effect,
)

LOOP = (
    '[{"match": "loop", "repeat_tool": true, '
    '"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}]'
)
WAKE = {
    "type": "process_wake",
    "process_id": "proc_1",
    "status": "completed",
    "summary": "the subagent says 42",
    "call_id": "call_1",
}
WAKE_TEXT = "[background process proc_1 completed; result of tool call call_1] the subagent says 42"


class Crash(Exception):
    """The worker process dies here (fault injection)."""


@pytest.fixture
def runner() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(timeout=30)


def wake(policy: str = "earliest_safe_boundary") -> QueuedWorkDraft:
    return QueuedWorkDraft(
        "process:proc_1:event:2:wake",
        "turn_work",
        (WAKE,),
        delivery_policy=policy,  # type: ignore[arg-type]
    )


def batch_states(harness: Harness, sid: str) -> list[str]:
    return [b.state for b in harness.store.queue.list_batches(sid, include_done=True)]


def test_a_running_turn_takes_a_result_at_its_next_step(harness: Harness) -> None:
    """The result joins the running turn as a message after its tool results; the model's
    answer in that same turn uses it, and the turn's final commit settles the batch."""
    core, _ = harness.core(LOOP)
    sid = harness.session()
    harness.enqueue(sid, "loop")
    first = run_step(core, sid)
    assert first.status == "progressed"
    harness.store.queue.enqueue(sid, wake())

    result = run_step(core, sid)

    assert result.status == "finished" and result.turn_id == first.turn_id
    assert result.outcome is not None and result.outcome["text"] == "echo: " + WAKE_TEXT
    messages = harness.messages(sid)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "user", "assistant"]
    assert messages[3].text == WAKE_TEXT
    assert batch_states(harness, sid) == ["completed"]
    assert harness.store.turns.active(sid) is None


def test_a_result_for_after_the_turn_waits_and_starts_a_turn_of_its_own(
    harness: Harness,
) -> None:
    """after_current_turn keeps today's behaviour: the running turn goes on without it."""
    core, _ = harness.core(LOOP)
    sid = harness.session()
    harness.enqueue(sid, "loop")
    assert run_step(core, sid).status == "progressed"
    harness.store.queue.enqueue(sid, wake("after_current_turn"))

    assert run_step(core, sid).status == "progressed"
    assert batch_states(harness, sid) == ["ready"]
    assert WAKE_TEXT not in [m.text for m in harness.messages(sid)]


def test_a_result_taken_by_a_crashed_step_reaches_the_model_on_the_rerun(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that took the result and died before committing: the next owner re-runs the
    step with the very same result, once, and settles it."""
    core_a, llm = harness.core(LOOP, owner="worker-a")
    core_b, _ = harness.core(provider=llm, owner="worker-b")
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "loop")
    assert run_step(core_a, sid).status == "progressed"
    store.queue.enqueue(sid, wake())
    real_close = store.steps.close

    def dying_close(request: Any) -> Any:
        monkeypatch.setattr(store.steps, "close", real_close)
        monkeypatch.setattr(store.leases, "release", lambda fence: False)
        raise Crash("killed between effect and commit")

    monkeypatch.setattr(store.steps, "close", dying_close)
    with pytest.raises(Crash):
        run_step(core_a, sid)
    monkeypatch.undo()
    calls = llm.call_count
    wait_ms(FAST_LEASE.ttl_ms + 100)

    result = run_step(core_b, sid)

    assert result.status == "finished"
    assert result.outcome is not None and result.outcome["text"] == "echo: " + WAKE_TEXT
    assert llm.call_count == calls  # the journaled answer is replayed, not paid again
    assert [m.text for m in harness.messages(sid)].count(WAKE_TEXT) == 1
    assert batch_states(harness, sid) == ["completed"]


def test_a_cancelled_turn_leaves_the_result_for_the_next_turn(harness: Harness) -> None:
    """A turn asked to stop takes no result at its boundary: the result opens the next turn."""
    core, _ = harness.core(LOOP)
    sid = harness.session()
    harness.enqueue(sid, "loop")
    first = run_step(core, sid)
    harness.store.queue.enqueue(sid, wake())
    assert harness.store.turns.request_cancel(sid)

    stopped = run_step(core, sid)
    assert stopped.outcome is not None and stopped.outcome["reason"] == "cancelled"
    assert stopped.more_work and batch_states(harness, sid) == ["ready"]

    after = run_step(core, sid)
    assert after.status == "finished" and after.turn_id != first.turn_id
    assert harness.messages(sid)[-2].text == WAKE_TEXT
    assert batch_states(harness, sid) == ["completed"]


def test_an_interrupt_during_the_call_gives_the_result_back_to_the_queue(
    harness: Harness, runner: list[threading.Thread]
) -> None:
    """The step took the result, then its LLM call was cut: the stopped turn does not hold
    it, the batch is ready again with no claim, and the next turn answers it."""
    core, _ = harness.core(SLOW_SECOND_CALL)
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    assert run_step(core, sid).status == "progressed"
    store.queue.enqueue(sid, wake())
    out = step_in_thread(runner, core, sid)
    wait_for_effect(store, sid, "llm_call", step=1)
    assert batch_states(harness, sid) == ["claimed"]

    result, _ = interrupt_and_wait(harness, sid, out)

    assert result.outcome is not None and result.outcome["reason"] == "cancelled"
    assert result.more_work is True
    (batch,) = store.queue.list_batches(sid)
    assert batch.state == "ready"
    assert WAKE_TEXT not in [m.text for m in harness.messages(sid)]
    echo, _ = harness.core(owner="worker-b")
    follow = run_step(echo, sid)
    assert follow.outcome is not None and follow.outcome["text"] == "echo: " + WAKE_TEXT
    assert batch_states(harness, sid) == ["completed"]
