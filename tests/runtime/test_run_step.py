"""`run_step` end to end on both dialects: fenced steps, crash replay, cancellation, bad input."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from lash_tasks.attachments import attachments_for
from lash_tasks.errors import LeaseLost, TurnCommitConflict
from lash_tasks.machine import (
    ClearActiveTurn,
    CommitDraft,
    GraphAppend,
    Message,
    Node,
    TurnStamp,
)
from lash_tasks.providers import ScriptedProvider, load_rules
from lash_tasks.providers.http_send import RetryPolicy
from lash_tasks.providers.openai_chat import OpenAIChatProvider
from lash_tasks.runtime.effects import DurableEffectHost
from lash_tasks.runtime.step_driver import StepResult, run_step
from lash_tasks.store.records import InputState, Lease
from lash_tasks.store.schema import graph_nodes
from lash_tasks.store.store import Store
from tests.runtime._llm_server import ScriptedHttpLlm, chat_reply
from tests.runtime.conftest import FAST_LEASE, Harness, wait_ms

CALC = (
    '[{"match": "calc", '
    '"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]}]'
)
LOOP = (
    '[{"match": "loop", "repeat_tool": true, '
    '"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}]'
)


class Crash(Exception):
    """The worker process dies here (fault injection)."""


def assert_settled(store: Store, session_id: str) -> None:
    """Every input answered, no live lease, no active turn."""
    assert {i.state for i in store.inputs.list_all(session_id)} == {InputState.COMPLETED}
    assert store.leases.state(session_id)[0] is None
    assert store.turns.active(session_id) is None


def roles(messages: list[Message]) -> list[str]:
    return [m.role for m in messages]


@pytest.fixture
def http_llm() -> Iterator[list[Any]]:
    """Local LLM servers and their providers, all closed after the test."""
    opened: list[Any] = []
    yield opened
    for item in reversed(opened):
        item.close() if isinstance(item, OpenAIChatProvider) else item.stop()


def _openai(
    opened: list[Any], *replies: tuple[int, bytes]
) -> tuple[ScriptedHttpLlm, OpenAIChatProvider]:
    server = ScriptedHttpLlm(*replies)
    provider = OpenAIChatProvider(server.base_url, retry=RetryPolicy(max_attempts=1))
    opened.extend([server, provider])
    return server, provider


def test_two_step_tool_turn_commits_the_exact_transcript(harness: Harness) -> None:
    """A calculator turn: progressed, then finished 'done: 5'; user, assistant, tool, assistant."""
    core, llm = harness.core(CALC)
    sid = harness.session()
    harness.enqueue(sid, "calc please")

    first = run_step(core, sid)
    assert (first.status, first.more_work, first.head_revision) == ("progressed", True, 1)
    active = harness.store.turns.active(sid)
    assert active is not None and active.turn_id == first.turn_id and active.step_index == 1
    assert harness.store.leases.state(sid)[0] is None

    second = run_step(core, sid)
    assert (second.status, second.more_work, second.head_revision) == ("finished", False, 2)
    assert second.outcome is not None
    assert (second.outcome["status"], second.outcome["text"]) == ("finished", "done: 5")
    assert run_step(core, sid).status == "idle"

    messages = harness.messages(sid)
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]
    call = messages[1].tool_calls[0]
    assert call.name == "calculator"
    assert (messages[2].text, messages[2].tool_call_id) == ("5", call.call_id)
    assert messages[3].text == "done: 5"
    assert llm.call_count == 2
    assert_settled(harness.store, sid)

    turn = first.turn_id
    keys = {e["replay_key"]: e["status"] for e in harness.store.journal.entries(sid, turn)}
    assert keys == {
        f"{sid}:{turn}:0:llm_call:0": "completed",
        f"{sid}:{turn}:0:tool_call:0:{call.call_id}": "completed",
        f"{sid}:{turn}:1:llm_call:0": "completed",
    }
    assert harness.store.maintenance.count_rows("lash_turn_commits", sid) == 1


def test_three_step_turn_stops_at_max_turns(harness: Harness) -> None:
    """A tool loop with max_turns=3 gives progressed, progressed, then stopped(max_turns)."""
    core, llm = harness.core(LOOP)
    sid = harness.session(max_turns=3)
    harness.enqueue(sid, "loop forever")
    statuses = [run_step(core, sid) for _ in range(3)]
    assert [s.status for s in statuses] == ["progressed", "progressed", "finished"]
    outcome = statuses[-1].outcome
    assert outcome is not None
    assert (outcome["status"], outcome["reason"]) == ("stopped", "max_turns")
    assert llm.call_count == 3
    messages = harness.messages(sid)
    assert roles(messages) == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]
    assert "limit of 3 model calls" in messages[-1].text
    path = harness.store.sessions.load(sid).graph.active_path()
    assert path[-1].kind == "event"
    assert path[-1].payload["reason"] == "max_turns"
    assert_settled(harness.store, sid)


@pytest.mark.parametrize("crash_at", [0, 1], ids=["progress-commit", "final-commit"])
def test_crash_between_effects_and_commit_replays_journaled_outcomes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """A worker dying after its effects but before its commit: the next owner replays the
    journal (no second LLM call) and exactly one copy of each message is committed."""
    llm = ScriptedProvider(load_rules(CALC))
    core_a, _ = harness.core(provider=llm, owner="worker-a")
    core_b, _ = harness.core(provider=llm, owner="worker-b")
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    if crash_at == 1:
        assert run_step(core_a, sid).status == "progressed"
    revision = store.sessions.record(sid).head_revision
    real_close = store.steps.close

    def dying_close(request: Any) -> Any:
        monkeypatch.setattr(store.steps, "close", real_close)
        monkeypatch.setattr(store.leases, "release", lambda fence: False)  # dead: no release
        raise Crash("killed between effect and commit")

    monkeypatch.setattr(store.steps, "close", dying_close)
    with pytest.raises(Crash):
        run_step(core_a, sid)
    monkeypatch.undo()
    calls_after_crash = llm.call_count
    assert calls_after_crash == crash_at + 1
    assert store.sessions.record(sid).head_revision == revision
    assert store.leases.state(sid)[0] == "worker-a"

    busy = run_step(core_b, sid)
    assert busy.status == "busy"
    assert busy.retry_after_ms is not None and 0 <= busy.retry_after_ms <= FAST_LEASE.ttl_ms
    wait_ms(busy.retry_after_ms + 100)

    replayed = run_step(core_b, sid)
    assert replayed.status == ("progressed" if crash_at == 0 else "finished")
    assert llm.call_count == calls_after_crash
    assert isinstance(core_b.effects, DurableEffectHost)
    assert core_b.effects.replayed == (2 if crash_at == 0 else 1)
    assert core_b.effects.executed == 0

    final = replayed if crash_at == 1 else harness.run_until_settled(core_b, sid)
    assert final.outcome is not None and final.outcome["text"] == "done: 5"
    assert llm.call_count == 2
    messages = harness.messages(sid)
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]
    assert len(harness.store.sessions.load(sid).graph.nodes) == 4
    assert_settled(store, sid)


def test_stale_owner_commit_is_refused_after_takeover(harness: Harness) -> None:
    """Owner A's expired fence cannot commit once owner B holds the lease; nothing is written."""
    store = harness.store
    sid = harness.session()
    lease_a = store.leases.try_claim(sid, "worker-a", "inc-a", ttl_ms=100)
    assert isinstance(lease_a, Lease)
    wait_ms(200)
    lease_b = store.leases.try_claim(sid, "worker-b", "inc-b", ttl_ms=30_000)
    assert isinstance(lease_b, Lease)
    assert lease_b.fencing_token == lease_a.fencing_token + 1
    node = Node("n1", None, "message", Message("user", "hi").to_json(), "t0")
    draft = CommitDraft(sid, 0, lease_a.fence, GraphAppend((node,), "n1"))
    with pytest.raises(LeaseLost):
        store.commits.commit(draft)
    assert store.sessions.record(sid).head_revision == 0
    assert store.sessions.load(sid).graph.nodes == {}
    assert store.leases.state(sid)[0] == "worker-b"
    assert store.commits.commit(CommitDraft(sid, 0, lease_b.fence, draft.graph)).head_revision == 1


def test_step_whose_lease_was_taken_over_is_discarded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose lease renewals stop landing loses its lease mid-step: the next owner
    sees effect_busy while the LLM call is still live, the stale step reports lease_lost and
    writes nothing, and the next owner finishes the turn from the journal."""
    store = harness.store
    core_a, llm = harness.core('[{"match": "slow", "delay_ms": 1300}]', owner="worker-a")
    core_b, _ = harness.core(provider=llm, owner="worker-b")
    sid = harness.session()
    harness.enqueue(sid, "slow one")
    monkeypatch.setattr(store.leases, "renew", lambda fence, ttl_ms=0: 0)  # partitioned
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(run_step(core_a, sid)))
    worker.start()
    wait_ms(FAST_LEASE.ttl_ms + 150)
    busy = run_step(core_b, sid)
    assert busy.status == "effect_busy"
    assert busy.more_work is True and busy.retry_after_ms is not None
    worker.join(timeout=10)
    monkeypatch.undo()
    assert results[0].status == "lease_lost"
    assert store.sessions.record(sid).head_revision == 0
    assert store.sessions.load(sid).graph.nodes == {}
    assert store.leases.state(sid)[0] is None

    final = harness.run_until_settled(core_b, sid)
    assert final.outcome is not None and final.outcome["text"] == "echo: slow one"
    assert llm.call_count == 1
    assert roles(harness.messages(sid)) == ["user", "assistant"]
    assert_settled(store, sid)


def test_replayed_final_commit_is_a_no_op(harness: Harness) -> None:
    """The same final commit twice: the turn stamp returns replayed=True, revision unchanged;
    the same turn with different content is a TurnCommitConflict."""
    store = harness.store
    sid = harness.session()
    lease = store.leases.try_claim(sid, "worker-a", "inc-a", ttl_ms=30_000)
    assert isinstance(lease, Lease)
    node = Node("n1", None, "message", Message("user", "hi").to_json(), "t0")
    result = {"turn_id": "turn_x", "outcome": {"status": "finished"}}
    draft = CommitDraft(
        sid,
        0,
        lease.fence,
        GraphAppend((node,), "n1"),
        active_turn=ClearActiveTurn(),
        turn_stamp=TurnStamp("turn_x", "a" * 64, result),
        release_lease=True,
    )
    first = store.commits.commit(draft)
    assert (first.head_revision, first.replayed) == (1, False)
    again = store.commits.commit(draft)
    assert (again.head_revision, again.replayed, again.turn_result) == (1, True, result)
    assert store.sessions.record(sid).head_revision == 1
    assert len(store.sessions.load(sid).graph.nodes) == 1
    other = CommitDraft(
        sid, 1, lease.fence, GraphAppend((), "n1"), turn_stamp=TurnStamp("turn_x", "b" * 64, result)
    )
    with pytest.raises(TurnCommitConflict):
        store.commits.commit(other)


def test_busy_when_another_owner_holds_the_lease(harness: Harness) -> None:
    """With another owner's live lease, run_step returns busy with retry_after_ms, doing nothing."""
    core, llm = harness.core()
    sid = harness.session()
    harness.enqueue(sid, "hello")
    other = harness.store.leases.try_claim(sid, "worker-z", "inc-z", ttl_ms=5_000)
    assert isinstance(other, Lease)
    result = run_step(core, sid)
    assert result.status == "busy"
    assert result.retry_after_ms is not None and 0 < result.retry_after_ms <= 5_000
    assert llm.call_count == 0
    assert harness.store.inputs.list_pending(sid)
    assert harness.store.leases.state(sid)[0] == "worker-z"


def test_idle_session_releases_the_lease(harness: Harness) -> None:
    """Nothing to do: run_step returns idle and leaves no lease behind."""
    core, _ = harness.core()
    sid = harness.session()
    assert run_step(core, sid).status == "idle"
    assert harness.store.leases.state(sid)[0] is None


def test_cancel_request_stops_the_turn_at_the_next_step(harness: Harness) -> None:
    """request_cancel during a tool loop: the next step ends stopped(cancelled) with an event."""
    core, llm = harness.core(LOOP)
    sid = harness.session()
    harness.enqueue(sid, "loop please")
    assert run_step(core, sid).status == "progressed"
    assert harness.store.turns.request_cancel(sid) is True
    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "cancelled")
    assert llm.call_count == 1
    last = harness.store.sessions.load(sid).graph.active_path()[-1]
    assert last.kind == "event"
    assert last.payload["type"] == "turn_stopped"
    assert last.payload["reason"] == "cancelled"
    assert roles(harness.messages(sid)) == ["user", "assistant", "tool"]
    assert_settled(harness.store, sid)
    assert harness.store.turns.request_cancel(sid) is False


def test_unknown_tool_is_an_error_result_and_the_turn_continues(harness: Harness) -> None:
    """A call to an unknown tool comes back as an error tool result the model reads."""
    core, _ = harness.core('[{"match": "bad", "tool_calls": [{"name": "nope", "arguments": {}}]}]')
    sid = harness.session()
    final = harness.turn(core, sid, "bad tool")
    messages = harness.messages(sid)
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]
    assert messages[2].is_error is True
    assert "unknown tool 'nope'" in messages[2].text
    assert final.outcome is not None and final.outcome["status"] == "finished"
    assert "unknown tool 'nope'" in final.outcome["text"]
    assert_settled(harness.store, sid)


def test_tool_arguments_that_are_not_json_are_an_error_result(
    harness: Harness, http_llm: list[Any]
) -> None:
    """Non-JSON tool arguments from the model become an error tool result; the turn goes on."""
    call = {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{2+"}}
    server, provider = _openai(
        http_llm, (200, chat_reply(tool_calls=[call])), (200, chat_reply("sorry"))
    )
    core, _ = harness.core(provider=provider)
    sid = harness.session()
    final = harness.turn(core, sid, "compute")
    assert final.outcome is not None and final.outcome["text"] == "sorry"
    messages = harness.messages(sid)
    assert roles(messages) == ["user", "assistant", "tool", "assistant"]
    assert messages[2].is_error is True
    assert "not valid JSON" in messages[2].text
    second_request = server.requests[1]
    assert any("not valid JSON" in str(m.get("content")) for m in second_request["messages"])
    assert_settled(harness.store, sid)


def test_provider_401_stops_the_turn_with_a_recorded_outcome(harness: Harness) -> None:
    """A 401 ends the turn stopped(provider_error), not retryable, in one final commit."""
    core, llm = harness.core('[{"match": "auth", "fail_first": 1, "fail_status": 401}]')
    sid = harness.session()
    harness.enqueue(sid, "auth please")
    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "provider_error")
    assert result.outcome["retryable"] is False
    assert "401" in result.outcome["text"]
    assert llm.call_count == 1
    assert harness.store.sessions.record(sid).head_revision == 1
    path = harness.store.sessions.load(sid).graph.active_path()
    assert [n.kind for n in path] == ["message", "event"]
    assert path[1].payload["reason"] == "provider_error"
    assert harness.store.maintenance.count_rows("lash_turn_commits", sid) == 1
    assert_settled(harness.store, sid)


def test_malformed_provider_answer_stops_with_provider_error(
    harness: Harness, http_llm: list[Any]
) -> None:
    """A 200 whose body is not JSON ends the turn stopped(provider_error), recorded."""
    _, provider = _openai(http_llm, (200, b"<html>definitely not json"))
    core, _ = harness.core(provider=provider)
    sid = harness.session()
    harness.enqueue(sid, "hello")
    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "provider_error")
    assert roles(harness.messages(sid)) == ["user"]
    assert_settled(harness.store, sid)


def test_oversized_tool_output_goes_to_an_attachment(harness: Harness) -> None:
    """Tool output over 16 KiB: the graph holds a truncated view naming an attachment that
    holds the full bytes, and the commit that writes that view stamps its manifest row."""
    script = (
        '[{"match": "big", "tool_calls": [{"name": "repeat_text", '
        '"arguments": {"text": "0123456789", "times": 2000}}]}]'
    )
    core, _ = harness.core(script)
    sid = harness.session()
    harness.enqueue(sid, "big output")
    assert run_step(core, sid).status == "progressed"
    tool = harness.messages(sid)[2]
    assert tool.role == "tool"
    (attachment_id,) = tool.attachments
    assert len(tool.text.encode()) <= 16384
    assert f"full output stored as attachment {attachment_id}" in tool.text
    (row,) = harness.store.manifest.rows(sid)
    assert row.attachment_id == attachment_id and row.committed_at is not None
    assert (row.owner_kind, row.owner_id) == ("turn", harness.store.turns.active(sid).turn_id)  # type: ignore[union-attr]
    assert row.media_type == "text/plain"

    final = run_step(core, sid)
    assert final.status == "finished"
    assert final.outcome is not None and "omitted" in final.outcome["text"]
    full = attachments_for(harness.store.manifest, harness.blobs, sid).get(attachment_id)
    assert full == b"0123456789" * 2000
    (row,) = harness.store.manifest.rows(sid)
    assert row.committed_at is not None
    assert_settled(harness.store, sid)


def test_replay_mismatch_ends_the_turn_instead_of_retrying_forever(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a re-run step no longer matches its journal (the tool surface changed after a
    crash), the turn ends stopped(runtime_error), recorded and readable: never an endless retry."""
    llm = ScriptedProvider(load_rules(CALC))
    core_a, _ = harness.core(provider=llm, owner="worker-a")
    store = harness.store
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    real_close = store.steps.close

    def dying_close(request: Any) -> Any:
        monkeypatch.setattr(store.steps, "close", real_close)
        raise Crash("killed between effect and commit")

    monkeypatch.setattr(store.steps, "close", dying_close)
    with pytest.raises(Crash):
        run_step(core_a, sid)
    monkeypatch.undo()

    from lash_tasks.tools.registry import ToolRegistry

    core_b, _ = harness.core(provider=llm, owner="worker-b", tools=ToolRegistry)
    result = run_step(core_b, sid)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "runtime_error")
    assert result.outcome["retryable"] is False
    assert result.outcome["detail"]["code"] == "replay_mismatch"
    assert llm.call_count == 1
    path = store.sessions.load(sid).graph.active_path()
    assert [n.kind for n in path] == ["message", "event"]
    assert path[-1].payload["reason"] == "runtime_error"
    assert_settled(store, sid)
    assert run_step(core_b, sid).status == "idle"


def test_concurrent_steps_of_one_core_never_share_the_lease(harness: Harness) -> None:
    """Two threads of one worker (same owner and incarnation) poking one session: one step
    runs, the other is busy; the running step is not disturbed and the LLM is called once."""
    core, llm = harness.core('[{"match": "slow", "delay_ms": 400}]')
    sid = harness.session()
    harness.enqueue(sid, "slow one")
    start = threading.Barrier(2)
    results: list[Any] = []

    def poke() -> None:
        start.wait()
        results.append(run_step(core, sid))

    threads = [threading.Thread(target=poke) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(r.status for r in results) == ["busy", "finished"]
    assert llm.call_count == 1
    assert roles(harness.messages(sid)) == ["user", "assistant"]
    assert_settled(harness.store, sid)


def test_terminal_error_ends_the_turn_with_a_recorded_outcome(harness: Harness) -> None:
    """A turn that cannot run (its branch point vanished after the enqueue accepted it)
    ends stopped(runtime_error)."""
    core, llm = harness.core()
    sid = harness.session()
    harness.turn(core, sid, "first")
    harness.turn(core, sid, "second")
    path = harness.store.sessions.load(sid).graph.active_path()
    first_answer, second = path[1].node_id, path[2].node_id
    harness.turn(core, sid, "third", branch_from=first_answer)  # orphans "second"
    harness.enqueue(sid, "retry from the orphan", branch_from=second)
    n = graph_nodes  # gone behind the store's back: maintenance itself never removes it
    with harness.store.database.engine.begin() as conn:
        conn.execute(update(n).where(n.c.node_id == second).values(tombstoned_at=1))
    result = run_step(core, sid)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == ("stopped", "runtime_error")
    assert second in result.outcome["text"]
    assert llm.call_count == 3  # only the first three turns called the model
    path = harness.store.sessions.load(sid).graph.active_path()
    assert [n.kind for n in path][-2:] == ["message", "event"]
    assert path[-2].payload["text"] == "retry from the orphan"
    assert all(i.state == "completed" for i in harness.store.inputs.list_all(sid))
    assert_settled(harness.store, sid)


def test_retryable_provider_error_retries_until_the_final_attempt(harness: Harness) -> None:
    """A 503 raises for a retry and changes nothing; the final attempt records it."""
    from lash_tasks.errors import ProviderError

    core, llm = harness.core('[{"match": "busy", "fail_first": 2, "fail_status": 503}]')
    sid = harness.session()
    harness.enqueue(sid, "busy model")
    with pytest.raises(ProviderError) as info:
        run_step(core, sid, final_attempt=False)
    assert info.value.retryable is True
    assert harness.store.sessions.record(sid).head_revision == 0
    assert harness.store.leases.state(sid)[0] is None
    result = run_step(core, sid, final_attempt=True)
    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["reason"], result.outcome["retryable"]) == ("provider_error", True)
    assert llm.call_count == 2
    assert all(i.state == "completed" for i in harness.store.inputs.list_all(sid))
    assert_settled(harness.store, sid)


def test_retried_step_succeeds_once_the_provider_recovers(harness: Harness) -> None:
    """After a transient provider failure the retried step calls again and finishes."""
    from lash_tasks.errors import ProviderError

    core, llm = harness.core('[{"match": "flaky", "fail_first": 1, "fail_status": 429}]')
    sid = harness.session()
    harness.enqueue(sid, "flaky model")
    with pytest.raises(ProviderError):
        run_step(core, sid, final_attempt=False)
    result = run_step(core, sid, final_attempt=False)
    assert result.status == "finished"
    assert result.outcome is not None
    assert result.outcome["text"] == "echo: flaky model"
    assert llm.call_count == 2


def test_a_step_past_its_time_limit_gives_up_its_lease(harness: Harness) -> None:
    """A hung step stops renewing at the step time limit and can no longer commit."""
    core, _ = harness.core(
        '[{"match": "slow", "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 2500}}]}]'
    )
    core.step_time_limit_ms = 1000
    sid = harness.session()
    harness.enqueue(sid, "slow tool")
    result = run_step(core, sid)
    assert result.status == "lease_lost"
    assert harness.store.sessions.record(sid).head_revision == 0
    # Nothing committed; the turn stays durable for the next worker to resume.
    active = harness.store.turns.active(sid)
    assert active is not None and active.step_index == 0
    assert [i.state for i in harness.store.inputs.list_all(sid)] == ["claimed"]


def test_interrupt_during_the_first_step_stops_the_turn_in_that_step(
    harness: Harness,
) -> None:
    """A turn is interruptible from its first step: its running tool call finishes and is
    kept, and the turn stops in the same step instead of calling the model again."""

    core, llm = harness.core(
        '[{"match": "slow", "repeat_tool": true,'
        ' "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 400}}]}]'
    )
    sid = harness.session()
    harness.enqueue(sid, "slow loop")
    results: list[StepResult] = []
    runner = threading.Thread(target=lambda: results.append(run_step(core, sid)))
    runner.start()
    deadline = time.monotonic() + 5
    while harness.store.turns.active(sid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert harness.store.turns.request_cancel(sid) is True
    runner.join(timeout=10)
    assert [r.status for r in results] == ["finished"]
    final = results[0]
    assert final.outcome is not None
    assert (final.outcome["status"], final.outcome["reason"]) == ("stopped", "cancelled")
    assert [(m.role, m.text) for m in harness.messages(sid)][-1] == ("tool", "slept 400 ms")
    assert run_step(core, sid).status == "idle"
    assert llm.call_count == 1
    assert_settled(harness.store, sid)
