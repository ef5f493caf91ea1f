"""What a step picks up: commands first, batched inputs, steer inputs, queued turn work."""

from __future__ import annotations

from typing import Any

import pytest

from lash_tasks.machine import QueuedWorkDraft
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import InputDraft, InputState
from tests.runtime.conftest import FAST_LEASE, Harness, wait_ms

LOOP = (
    '[{"match": "loop", "repeat_tool": true, '
    '"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}]'
)


class Crash(Exception):
    """The worker process dies here (fault injection)."""


def _states(harness: Harness, sid: str) -> list[str]:
    return [str(i.state) for i in harness.store.inputs.list_all(sid)]


def test_pending_inputs_are_claimed_together_as_one_turn(harness: Harness) -> None:
    """Inputs pending when a step starts form one turn, in enqueue order; later ones wait."""
    core, llm = harness.core()
    sid = harness.session()
    harness.enqueue(sid, "first")
    harness.enqueue(sid, "second")
    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None and result.outcome["text"] == "echo: second"
    texts = [m.text for m in harness.messages(sid)]
    assert texts == ["first", "second", "echo: second"]
    assert llm.call_count == 1
    assert _states(harness, sid) == ["completed", "completed"]


def test_finished_step_asks_for_another_poke_when_input_waits(harness: Harness) -> None:
    """An input enqueued during a turn makes the finishing step report more_work."""
    core, _ = harness.core(LOOP)
    sid = harness.session(max_turns=2)
    harness.enqueue(sid, "loop")
    assert run_step(core, sid).status == "progressed"
    harness.enqueue(sid, "next question")
    finished = run_step(core, sid)
    assert (finished.status, finished.more_work) == ("finished", True)
    follow = run_step(core, sid)
    assert follow.status == "finished"
    assert follow.turn_id != finished.turn_id
    assert follow.outcome is not None and follow.outcome["text"] == "echo: next question"


def test_session_commands_run_first_and_never_become_prompt_text(harness: Harness) -> None:
    """A queued session command is settled in its own commit before the pending input's turn."""
    core, llm = harness.core()
    sid = harness.session()
    harness.enqueue(sid, "hello")
    harness.store.queue.enqueue(
        sid, QueuedWorkDraft("cmd-1", "session_command", ({"command": "noop"},))
    )
    first = run_step(core, sid)
    assert (first.status, first.more_work, first.head_revision) == ("command", True, 1)
    assert llm.call_count == 0
    assert harness.store.queue.list_batches(sid) == []
    second = run_step(core, sid)
    assert second.status == "finished"
    assert [m.text for m in harness.messages(sid)] == ["hello", "echo: hello"]


def test_queued_turn_work_runs_as_a_turn_and_is_completed(harness: Harness) -> None:
    """A process wake becomes a user-role notice turn; its batch is settled by the final commit."""
    core, _ = harness.core()
    sid = harness.session()
    payload = {"type": "process_wake", "process_id": "p1", "status": "completed", "summary": "ok"}
    harness.store.queue.enqueue(
        sid, QueuedWorkDraft("process:p1:event:1:wake", "turn_work", (payload,))
    )
    result = run_step(core, sid)
    assert result.status == "finished"
    messages = harness.messages(sid)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].text == "[background process p1 completed] ok"
    assert harness.store.queue.list_batches(sid) == []
    assert [b.state for b in harness.store.queue.list_batches(sid, include_done=True)] == [
        "completed"
    ]
    assert harness.store.turns.active(sid) is None


def test_steer_input_is_accepted_at_the_next_step_boundary(harness: Harness) -> None:
    """An active-turn input joins the running turn at its next step and completes with it."""
    core, _ = harness.core(LOOP)
    sid = harness.session()
    harness.enqueue(sid, "loop")
    assert run_step(core, sid).status == "progressed"
    harness.store.inputs.enqueue(
        InputDraft(sid, "steer-1", {"text": "please halt"}, ingress="active_turn")
    )
    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None and result.outcome["text"] == "echo: please halt"
    messages = harness.messages(sid)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "user", "assistant"]
    assert messages[3].text == "please halt"
    assert _states(harness, sid) == ["completed", "completed"]


def test_steer_input_on_an_idle_session_starts_the_next_turn(harness: Harness) -> None:
    """A steer input with no turn to join is answered by the next turn, never stranded."""
    core, _ = harness.core()
    sid = harness.session()
    harness.store.inputs.enqueue(
        InputDraft(sid, "steer-idle", {"text": "anyone there?"}, ingress="active_turn")
    )
    assert harness.store.turns.has_waiting_work(sid)
    assert [r.session_id for r in harness.store.maintenance.runnable_sessions()] == [sid]
    result = run_step(core, sid)
    assert result.status == "finished"
    assert [m.text for m in harness.messages(sid)] == ["anyone there?", "echo: anyone there?"]
    assert _states(harness, sid) == ["completed"]


def test_steer_input_beside_a_pending_input_joins_its_turn(harness: Harness) -> None:
    """Without a running turn, waiting steer and next-turn inputs are claimed as one turn."""
    core, _ = harness.core()
    sid = harness.session()
    harness.enqueue(sid, "hello")
    harness.store.inputs.enqueue(
        InputDraft(sid, "steer-late", {"text": "and then"}, ingress="active_turn")
    )
    first = run_step(core, sid)
    assert first.status == "finished"
    assert first.more_work is False
    assert [m.text for m in harness.messages(sid)] == ["hello", "and then", "echo: and then"]
    assert _states(harness, sid) == ["completed", "completed"]


def test_steer_input_accepted_by_a_crashed_step_is_not_lost(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A steer input accepted by a step that died before committing reaches the model when
    the next owner re-runs that step, and the re-run still replays the journal."""
    core_a, llm = harness.core(LOOP, owner="worker-a")
    core_b, _ = harness.core(provider=llm, owner="worker-b")
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "loop")
    assert run_step(core_a, sid).status == "progressed"
    store.inputs.enqueue(InputDraft(sid, "steer-1", {"text": "please halt"}, ingress="active_turn"))
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
    assert result.outcome is not None and result.outcome["text"] == "echo: please halt"
    assert llm.call_count == calls
    texts = [(m.role, m.text) for m in harness.messages(sid)]
    assert ("user", "please halt") in texts
    assert texts[-1] == ("assistant", "echo: please halt")
    assert _states(harness, sid) == [InputState.COMPLETED, InputState.COMPLETED]
