"""Interrupting a running turn (`cancel --interrupt`) on both dialects: the LLM call is cut
within about a second, no further tool call starts, committed steps stay, the cut is
journaled, and steer input that got no answer waits for the next turn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from lash_tasks.providers import ScriptedProvider, load_rules
from lash_tasks.runtime.effects import DurableEffectHost
from lash_tasks.runtime.step_driver import StepResult, run_step
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputDraft, InputState
from lash_tasks.store.store import Store
from tests.runtime.conftest import Harness

# Step 0 calls the calculator; step 1's LLM call then "thinks" for 20 s.
SLOW_SECOND_CALL = json.dumps(
    [
        {
            "match": "calc",
            "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}],
        },
        {"match": "", "repeat_tool": True, "delay_ms": 20_000},
    ]
)
# Interrupting takes one cancel poll (the fast lease's renew interval, 300 ms) and a commit.
CUT_WITHIN_S = 1.5


class Crash(Exception):
    """The worker process dies here (fault injection)."""


@pytest.fixture
def runner() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(timeout=30)


def step_in_thread(
    threads: list[threading.Thread], core: Any, sid: str
) -> list[StepResult | BaseException]:
    out: list[StepResult | BaseException] = []

    def run() -> None:
        try:
            out.append(run_step(core, sid))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    threads.append(thread)
    thread.start()
    return out


def wait_for_effect(store: Store, sid: str, kind: str, step: int, count: int = 1) -> None:
    """Until `count` effects of `kind` in step `step` are running (journaled in progress)."""
    deadline = time.monotonic() + 10
    while True:
        running = [
            e
            for e in store.journal.entries(sid)
            if e["status"] == "in_progress" and f":{step}:{kind}:" in e["replay_key"]
        ]
        if len(running) >= count:
            return
        assert time.monotonic() < deadline, f"no {kind} of step {step} started"
        time.sleep(0.01)


def interrupt_and_wait(
    harness: Harness, sid: str, out: list[StepResult | BaseException]
) -> tuple[StepResult, float]:
    """Request the interrupt; return the step's result and how long it took to end."""
    asked = time.monotonic()
    assert harness.store.turns.request_cancel(sid) is True
    deadline = asked + 10
    while not out and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - asked
    assert out, "the step did not end"
    result = out[0]
    assert isinstance(result, StepResult), result
    return result, elapsed


def expire_session_lease(store: Store, sid: str) -> None:
    """The holder is gone: its lease is over by the database clock."""
    with store.database.engine.begin() as conn:
        conn.execute(
            update(t.session_leases)
            .where(t.session_leases.c.session_id == sid)
            .values(expires_at=0)
        )


def test_interrupt_cuts_the_llm_call_and_keeps_committed_steps(
    harness: Harness, runner: list[threading.Thread]
) -> None:
    """A 20 s LLM call in step 1 is cut within ~1 s of the request: the turn ends
    stopped(cancelled), step 0 stays committed, and the cut call is journaled as interrupted."""
    core, llm = harness.core(SLOW_SECOND_CALL)
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    assert run_step(core, sid).status == "progressed"
    out = step_in_thread(runner, core, sid)
    wait_for_effect(store, sid, "llm_call", step=1)

    result, elapsed = interrupt_and_wait(harness, sid, out)

    assert elapsed < CUT_WITHIN_S, f"the interrupt took {elapsed:.2f} s"
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "cancelled")
    path = store.sessions.load(sid).graph.active_path()
    assert [(n.kind, n.payload.get("role")) for n in path] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "tool"),
        ("event", None),
    ]
    assert path[-1].payload["reason"] == "cancelled"
    cut = [e for e in store.journal.entries(sid) if ":1:llm_call:" in e["replay_key"]]
    assert [(e["status"], e["error"]["code"]) for e in cut] == [("failed", "interrupted")]
    assert llm.call_count == 2
    assert {i.state for i in store.inputs.list_all(sid)} == {InputState.COMPLETED}
    assert store.turns.active(sid) is None
    assert store.leases.state(sid)[0] is None


def test_rerun_of_an_interrupted_step_does_not_call_the_llm_again(
    harness: Harness, runner: list[threading.Thread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after the cut but before its commit: the next owner ends the turn
    stopped(cancelled) from the journal and the model is not called a second time."""
    llm = ScriptedProvider(load_rules(SLOW_SECOND_CALL))
    core_a, _ = harness.core(provider=llm, owner="worker-a")
    core_b, _ = harness.core(provider=llm, owner="worker-b")
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    assert run_step(core_a, sid).status == "progressed"
    real_close = store.steps.close

    def dying_close(request: Any) -> Any:
        monkeypatch.setattr(store.steps, "close", real_close)
        monkeypatch.setattr(store.leases, "release", lambda fence: False)  # dead: no release
        raise Crash("killed after the cut, before the commit")

    monkeypatch.setattr(store.steps, "close", dying_close)
    out = step_in_thread(runner, core_a, sid)
    wait_for_effect(store, sid, "llm_call", step=1)
    assert store.turns.request_cancel(sid) is True
    runner[0].join(timeout=10)
    assert len(out) == 1 and isinstance(out[0], Crash)
    monkeypatch.undo()
    assert llm.call_count == 2
    expire_session_lease(store, sid)

    result = run_step(core_b, sid)

    assert result.status == "finished"
    assert result.outcome is not None and result.outcome["reason"] == "cancelled"
    assert llm.call_count == 2
    assert isinstance(core_b.effects, DurableEffectHost) and core_b.effects.executed == 0
    cut = [e for e in store.journal.entries(sid) if ":1:llm_call:" in e["replay_key"]]
    assert [(e["status"], e["error"]["code"]) for e in cut] == [("failed", "interrupted")]
    assert store.turns.active(sid) is None


def test_no_tool_call_starts_after_the_interrupt(
    harness: Harness, runner: list[threading.Thread]
) -> None:
    """Nine 1.5 s tool calls, eight at a time: interrupted while the first eight run, they
    finish and are kept, the ninth never starts, and the turn stops in this same step."""
    calls = [{"name": "sleep_ms", "arguments": {"ms": 1500}}] * 9
    core, llm = harness.core(json.dumps([{"match": "nap", "tool_calls": calls}]))
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "nap time")
    out = step_in_thread(runner, core, sid)
    wait_for_effect(store, sid, "tool_call", step=0, count=8)

    result, elapsed = interrupt_and_wait(harness, sid, out)

    assert elapsed < 1.5 + CUT_WITHIN_S, f"the step took {elapsed:.2f} s"
    assert result.status == "finished"
    assert result.outcome is not None and result.outcome["reason"] == "cancelled"
    tools = [m for m in harness.messages(sid) if m.role == "tool"]
    assert [m.text for m in tools] == ["slept 1500 ms"] * 8 + [
        "tool call not run: the turn was interrupted"
    ]
    assert tools[-1].is_error is True
    # All nine were journaled before any ran; the ninth is recorded as never run.
    journaled = [e for e in store.journal.entries(sid) if ":tool_call:" in e["replay_key"]]
    statuses = sorted(e["status"] for e in journaled)
    assert statuses == ["completed"] * 8 + ["failed"]
    assert llm.call_count == 1
    assert store.turns.active(sid) is None


@pytest.mark.parametrize("when", ["before-the-step", "during-the-llm-call"])
def test_steer_input_without_an_answer_waits_for_the_next_turn(
    harness: Harness, runner: list[threading.Thread], when: str
) -> None:
    """A steer input the interrupted turn took but never got an answer to is not completed:
    it goes back to pending, stays out of the stopped turn, and the next turn answers it."""
    core, _ = harness.core(SLOW_SECOND_CALL)
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    assert run_step(core, sid).status == "progressed"
    steer = store.inputs.enqueue(
        InputDraft(sid, "steer-1", {"text": "please halt"}, ingress="active_turn")
    )
    if when == "before-the-step":
        assert store.turns.request_cancel(sid) is True
        result = run_step(core, sid)
    else:
        out = step_in_thread(runner, core, sid)
        wait_for_effect(store, sid, "llm_call", step=1)
        assert store.inputs.get(sid, steer.input_id).state == InputState.ACCEPTED  # type: ignore[union-attr]
        result, _ = interrupt_and_wait(harness, sid, out)

    assert result.outcome is not None and result.outcome["reason"] == "cancelled"
    assert result.more_work is True
    waiting = store.inputs.get(sid, steer.input_id)
    assert waiting is not None
    assert (waiting.state, waiting.ingress, waiting.claim_id) == (
        InputState.PENDING,
        "next_turn",
        None,
    )
    assert "please halt" not in [m.text for m in harness.messages(sid)]

    echo, _ = harness.core(owner="worker-b")
    follow = run_step(echo, sid)
    assert follow.status == "finished"
    assert follow.outcome is not None and follow.outcome["text"] == "echo: please halt"
    texts = [m.text for m in harness.messages(sid)]
    assert texts.count("please halt") == 1 and texts[-1] == "echo: please halt"
    assert {i.state for i in store.inputs.list_all(sid)} == {InputState.COMPLETED}


def test_step_time_limit_cuts_a_hung_llm_call(harness: Harness) -> None:
    """An LLM call that outlives the step's time limit is cut when the keeper gives the lease
    up: the step ends lease_lost at once and the call is freed, not journaled as failed."""
    core, _ = harness.core('[{"match": "slow", "delay_ms": 20000}]')
    core.step_time_limit_ms = 600
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "slow answer")
    started = time.monotonic()
    result = run_step(core, sid)
    assert time.monotonic() - started < 0.6 + CUT_WITHIN_S
    assert result.status == "lease_lost"
    (entry,) = store.journal.entries(sid)
    assert (entry["status"], entry["error"]) == ("in_progress", None)
    assert store.sessions.record(sid).head_revision == 0
