"""The turn protocol: `advance(step, event)` decides every outcome of a step, purely."""

from __future__ import annotations

from typing import Any

import pytest

from lash_tasks.machine import LlmResponse, Message, ToolCall, Usage
from lash_tasks.machine.graph import NodeDraft, SessionGraph
from lash_tasks.machine.protocol import (
    INTERRUPTED,
    NOT_RUN_TEXT,
    TURN_LIMIT_NOTE,
    CallLlm,
    CloseStep,
    Interrupted,
    LlmAnswered,
    LlmFailed,
    RetryLater,
    RunTools,
    SteerInput,
    Step,
    StepFailed,
    StepOpened,
    StepPlan,
    ToolOutcome,
    ToolsDone,
    advance,
    boundary_work,
)
from lash_tasks.machine.tool_budget import ToolOutputBudget
from lash_tasks.machine.turn_state import ClaimRef, ReplyRoute, StepContext, TurnState

NOW = "2026-01-01T00:00:00+00:00"
CTX = StepContext(session_id="s1", model="m", max_turns=3)
CALL = ToolCall("call_1", "calculator", '{"expression": "6*7"}')


def new_turn(**changes: Any) -> TurnState:
    fields: dict[str, Any] = {
        "turn_id": "turn_a",
        "input_claim": ClaimRef("tic:1", "tok"),
        "input_ids": ("in_1",),
        "opening": (Message("user", "hello"),),
    }
    fields.update(changes)
    return TurnState(**fields)


def graph_with(*messages: Message) -> SessionGraph:
    graph = SessionGraph()
    for i, message in enumerate(messages):
        graph.append(NodeDraft.for_message(f"old{i}", message, NOW))
    return graph


def open_step(turn: TurnState | None = None, **changes: Any) -> tuple[Step, tuple[Any, ...]]:
    fields: dict[str, Any] = {
        "turn": turn or new_turn(),
        "graph": SessionGraph(),
        "context": CTX,
        "now": NOW,
    }
    fields.update(changes)
    return advance(None, StepOpened(**fields))


def plan_of(effects: tuple[Any, ...]) -> StepPlan:
    assert len(effects) == 1 and isinstance(effects[0], CloseStep), effects
    plan: StepPlan = effects[0].plan
    return plan


def texts(plan: StepPlan) -> list[tuple[str, str]]:
    return [
        (str(n.payload.get("role", n.payload.get("type"))), str(n.payload.get("text", "")))
        for n in plan.nodes
    ]


def test_a_new_turn_asks_the_model_with_its_opening_messages() -> None:
    """The first step of a turn sends history + the turn's inputs, under a stable replay key."""
    _, effects = open_step(graph=graph_with(Message("user", "earlier")))
    (call,) = effects
    assert isinstance(call, CallLlm)
    assert [m.text for m in call.request.messages] == ["earlier", "hello"]
    assert call.replay_key == "s1:turn_a:0:llm_call:0"
    assert call.envelope == {"kind": "llm_call", "request": call.request.to_json()}


def test_an_answer_finishes_the_turn_with_a_stamped_final_plan() -> None:
    """A text answer ends the turn: opening + answer, outcome finished, result and hash."""
    step, _ = open_step()
    _, effects = advance(step, LlmAnswered(LlmResponse("hi there", usage=Usage(3, 2))))
    plan = plan_of(effects)
    assert plan.final and plan.next_turn is None
    assert texts(plan) == [("user", "hello"), ("assistant", "hi there")]
    assert [n.node_id for n in plan.nodes] == ["turn_a.0.0", "turn_a.0.1"]
    assert plan.outcome is not None and plan.outcome.status == "finished"
    assert plan.result == {
        "turn_id": "turn_a",
        "outcome": plan.outcome.to_json(),
        "input_ids": ["in_1"],
        "batch_ids": [],
        "steps": 1,
    }
    assert plan.usage == Usage(3, 2)
    assert plan.turn_commit_hash is not None and len(plan.turn_commit_hash) == 64


def test_a_replayed_step_makes_the_same_plan_and_hash() -> None:
    """Same events in, same nodes, ids and turn-commit hash out (replay is a no-op)."""
    plans = []
    for _ in range(2):
        step, _ = open_step()
        plans.append(plan_of(advance(step, LlmAnswered(LlmResponse("same")))[1]))
    assert plans[0] == plans[1]


def test_tool_calls_run_then_the_turn_continues_at_the_next_step() -> None:
    """Tool calls come back as RunTools; their results close a progress step, turn +1."""
    step, _ = open_step()
    step, effects = advance(step, LlmAnswered(LlmResponse("", tool_calls=(CALL,))))
    (run,) = effects
    assert isinstance(run, RunTools)
    assert run.invocations[0].replay_key == "s1:turn_a:0:tool_call:0:call_1"
    assert run.invocations[0].envelope == {
        "kind": "tool_call",
        "name": "calculator",
        "arguments": CALL.arguments,
    }
    result = Message("tool", "42", tool_call_id="call_1", name="calculator")
    _, effects = advance(step, ToolsDone((ToolOutcome("call_1", result),)))
    plan = plan_of(effects)
    assert not plan.final and plan.outcome is None
    assert plan.next_turn is not None
    assert plan.next_turn.step_index == 1 and plan.next_turn.opening == ()
    assert texts(plan) == [("user", "hello"), ("assistant", ""), ("tool", "42")]


def test_the_model_call_budget_stops_the_turn_with_a_note() -> None:
    """The step that spends max_turns model calls ends the turn stopped(max_turns)."""
    step, _ = open_step(new_turn(step_index=2, opening=()), graph=graph_with(Message("user", "q")))
    step, _ = advance(step, LlmAnswered(LlmResponse("", tool_calls=(CALL,))))
    result = Message("tool", "42", tool_call_id="call_1", name="calculator")
    plan = plan_of(advance(step, ToolsDone((ToolOutcome("call_1", result),)))[1])
    assert plan.outcome is not None and plan.outcome.reason == "max_turns"
    assert ("assistant", TURN_LIMIT_NOTE.format(n=3)) in texts(plan)
    assert texts(plan)[-1][0] == "turn_stopped"


def test_a_failed_tool_call_stops_the_turn_with_its_result_kept() -> None:
    """A tool call that failed for good ends the turn stopped(tool_failure)."""
    step, _ = open_step()
    step, _ = advance(step, LlmAnswered(LlmResponse("", tool_calls=(CALL,))))
    failed = Message("tool", "tool failed: boom", tool_call_id="call_1", is_error=True)
    outcome = ToolOutcome("call_1", failed, failure={"code": "tool_error", "message": "boom"})
    plan = plan_of(advance(step, ToolsDone((outcome,)))[1])
    assert plan.outcome is not None and plan.outcome.reason == "tool_failure"
    assert ("tool", "tool failed: boom") in texts(plan)


def test_an_empty_answer_is_a_provider_error() -> None:
    """No text and no tool calls cannot finish a turn."""
    step, _ = open_step()
    plan = plan_of(advance(step, LlmAnswered(LlmResponse("  ")))[1])
    assert plan.outcome is not None and plan.outcome.reason == "provider_error"


def test_a_recorded_provider_failure_ends_the_turn_readably() -> None:
    """A provider failure that was journaled ends the turn stopped(provider_error)."""
    step, _ = open_step()
    error = {"code": "provider_error", "message": "401 unauthorized", "retryable": False}
    plan = plan_of(advance(step, LlmFailed(error))[1])
    assert plan.outcome is not None and plan.outcome.reason == "provider_error"
    assert "401 unauthorized" in plan.outcome.text


def test_a_transient_failure_retries_the_step_while_attempts_remain() -> None:
    """A 429/5xx gives the step up to be retried, until its last chance or attempt."""
    error = {"code": "provider_error", "message": "503", "retryable": True}
    step, _ = open_step(new_turn(attempts=2))
    _, effects = advance(step, LlmFailed(error, transient=True))
    assert effects == (RetryLater(error),)
    step, _ = open_step(new_turn(attempts=5))
    plan = plan_of(advance(step, LlmFailed(error, transient=True))[1])
    assert plan.outcome is not None and plan.outcome.retryable
    last = StepContext(session_id="s1", model="m", max_turns=3, last_chance=True)
    step, _ = open_step(new_turn(attempts=1), context=last)
    assert isinstance(advance(step, LlmFailed(error, transient=True))[1][0], CloseStep)


def test_an_interrupted_call_cancels_and_returns_unanswered_steer() -> None:
    """A call cut on request ends the turn cancelled; steer input it carried waits."""
    turn = new_turn(step_index=1, opening=())
    steer = (SteerInput("in_2", Message("user", "also this")),)
    step, effects = open_step(turn, graph=graph_with(Message("user", "q")), steer=steer)
    (call,) = effects
    assert [m.text for m in call.request.messages] == ["q", "also this"]
    plan = plan_of(advance(step, LlmFailed({"code": INTERRUPTED, "message": "cut"}))[1])
    assert plan.outcome is not None and plan.outcome.reason == "cancelled"
    assert plan.returned_steer == ("in_2",)
    assert all("also this" not in text for _, text in texts(plan))


def test_a_cancel_requested_before_the_call_stops_without_calling() -> None:
    """A turn already interrupted opens straight into a cancelled close: no LLM call."""
    steer = (SteerInput("in_2", Message("user", "and")),)
    _, effects = open_step(new_turn(cancel_requested=True), steer=steer)
    plan = plan_of(effects)
    assert plan.outcome is not None and plan.outcome.reason == "cancelled"
    assert texts(plan)[0] == ("user", "hello")
    assert plan.returned_steer == ("in_2",)


def test_an_interrupt_before_the_tools_marks_them_not_run() -> None:
    """Interrupted once the model asked for tools: none runs, each gets a not-run result."""
    step, _ = open_step()
    step, _ = advance(step, LlmAnswered(LlmResponse("", tool_calls=(CALL,))))
    plan = plan_of(advance(step, Interrupted())[1])
    assert plan.outcome is not None and plan.outcome.reason == "cancelled"
    assert ("tool", NOT_RUN_TEXT) in texts(plan)


def test_tools_interrupted_midway_keep_the_results_that_ran() -> None:
    """Calls that ran keep their results; calls that never started are marked not run."""
    second = ToolCall("call_2", "calculator", "{}")
    step, _ = open_step()
    step, _ = advance(step, LlmAnswered(LlmResponse("", tool_calls=(CALL, second))))
    ran = ToolOutcome("call_1", Message("tool", "42", tool_call_id="call_1"))
    plan = plan_of(advance(step, ToolsDone((ran,), interrupted=True))[1])
    assert ("tool", "42") in texts(plan) and ("tool", NOT_RUN_TEXT) in texts(plan)
    assert plan.outcome is not None and plan.outcome.reason == "cancelled"


def test_a_step_out_of_attempts_ends_the_turn_naming_the_last_error() -> None:
    """Past max_attempts the turn ends stopped(runtime_error) with the last failure."""
    turn = new_turn(attempts=6, last_error={"code": "boom", "message": "kaput"})
    plan = plan_of(open_step(turn)[1])
    assert plan.outcome is not None and plan.outcome.reason == "runtime_error"
    assert "failed 5 times" in plan.outcome.text and "kaput" in plan.outcome.text
    assert texts(plan)[0] == ("user", "hello")


def test_a_missing_branch_point_ends_the_turn() -> None:
    """A turn whose branch point is gone ends readably instead of failing forever."""
    plan = plan_of(open_step(branch_error="no node 'x'")[1])
    assert plan.outcome is not None and plan.outcome.reason == "runtime_error"


def test_a_terminal_failure_keeps_the_inputs_and_drops_the_rest() -> None:
    """StepFailed drops this step's own nodes but keeps the opening and steer inputs."""
    step, _ = open_step()
    step, _ = advance(step, LlmAnswered(LlmResponse("", tool_calls=(CALL,))))
    plan = plan_of(advance(step, StepFailed({"code": "replay_mismatch", "message": "x"}))[1])
    assert texts(plan) == [("user", "hello"), ("turn_stopped", plan.outcome.text)]  # type: ignore[union-attr]
    assert plan.outcome is not None and plan.outcome.reason == "runtime_error"


def test_a_refused_record_ends_the_turn_with_no_nodes() -> None:
    """When even the stopped record was refused, the turn ends with no graph change."""
    step, _ = open_step()
    failed = StepFailed({"message": "bad"}, record_refused={"message": "node exists"})
    plan = plan_of(advance(step, failed)[1])
    assert plan.nodes == () and plan.final
    assert plan.outcome is not None and "node exists" in plan.outcome.text


def test_steer_already_in_the_graph_is_not_added_again() -> None:
    """A steer input a committed step already recorded is skipped by a later step."""
    graph = graph_with(Message("user", "q"))
    graph.append(NodeDraft.for_message("turn_a.steer.in_2", Message("user", "and"), NOW))
    steer = (SteerInput("in_2", Message("user", "and")),)
    step, _ = open_step(new_turn(step_index=1, opening=()), graph=graph, steer=steer)
    plan = plan_of(advance(step, LlmAnswered(LlmResponse("ok")))[1])
    assert [n.node_id for n in plan.nodes] == ["turn_a.1.0"]


WAKE = {
    "type": "process_wake",
    "process_id": "proc_1",
    "status": "completed",
    "summary": "42",
    "call_id": "call_9",
}


def test_boundary_work_joins_the_step_after_steer_as_a_result_message() -> None:
    """Queued work the running turn took is shown after its history and steer input, as a
    message naming the process and the tool call that started it; the step commits it."""
    turn = new_turn(step_index=1, opening=())
    steer = (SteerInput("in_2", Message("user", "also")),)
    wakes = (boundary_work("qwb:1", [WAKE]),)
    step, effects = open_step(
        turn, graph=graph_with(Message("user", "q")), steer=steer, wakes=wakes
    )
    (call,) = effects
    assert [m.text for m in call.request.messages] == [
        "q",
        "also",
        "[background process proc_1 completed; result of tool call call_9] 42",
    ]
    plan = plan_of(advance(step, LlmAnswered(LlmResponse("the answer is 42")))[1])
    assert [n.node_id for n in plan.nodes] == [
        "turn_a.steer.in_2",
        "turn_a.wake.qwb:1.0",
        "turn_a.1.0",
    ]
    assert plan.returned_wakes == () and plan.settles_queue_claim


def test_boundary_work_already_in_the_graph_is_not_added_again() -> None:
    """A batch a committed step already showed the model is skipped by later steps."""
    graph = graph_with(Message("user", "q"))
    graph.append(NodeDraft.for_message("turn_a.wake.qwb:1.0", Message("user", "r"), NOW))
    wakes = (boundary_work("qwb:1", [WAKE]), boundary_work("qwb:2", [WAKE]))
    step, _ = open_step(new_turn(step_index=2, opening=()), graph=graph, wakes=wakes)
    plan = plan_of(advance(step, LlmAnswered(LlmResponse("ok")))[1])
    assert [n.node_id for n in plan.nodes] == ["turn_a.wake.qwb:2.0", "turn_a.2.0"]


def test_an_interrupt_returns_boundary_work_the_model_never_saw() -> None:
    """A call cut on request gives this step's batches back to the queue; when they were
    all the turn's queue claim held, the final commit has no queue claim to settle."""
    turn = new_turn(step_index=1, opening=(), queue_claim=ClaimRef("qwc:1", "tok"))
    wakes = (boundary_work("qwb:1", [WAKE]),)
    step, _ = open_step(turn, graph=graph_with(Message("user", "q")), wakes=wakes)
    plan = plan_of(advance(step, Interrupted())[1])
    assert plan.outcome is not None and plan.outcome.reason == "cancelled"
    assert plan.returned_wakes == ("qwb:1",)
    assert not plan.settles_queue_claim
    assert all("proc_1" not in text for _, text in texts(plan))


def test_a_returned_batch_leaves_the_rest_of_the_queue_claim_to_settle() -> None:
    """Batches shown to the model earlier stay with the turn when a later one is returned."""
    graph = graph_with(Message("user", "q"))
    graph.append(NodeDraft.for_message("turn_a.wake.qwb:1.0", Message("user", "r"), NOW))
    wakes = (boundary_work("qwb:1", [WAKE]), boundary_work("qwb:2", [WAKE]))
    turn = new_turn(step_index=2, opening=(), cancel_requested=True)
    plan = plan_of(open_step(turn, graph=graph, wakes=wakes)[1])
    assert plan.returned_wakes == ("qwb:2",)
    assert plan.settles_queue_claim


def test_tool_output_is_budgeted_on_its_way_to_the_model() -> None:
    """The graph keeps a huge tool result whole; the model sees a head/tail view."""
    huge = Message("tool", "x" * 100_000, tool_call_id="c", name="t")
    ctx = StepContext(session_id="s1", model="m", max_turns=3, budget=ToolOutputBudget())
    _, effects = open_step(new_turn(opening=()), graph=graph_with(huge), context=ctx)
    (call,) = effects
    assert len(call.request.messages[0].text) < 20_000


def test_events_out_of_order_are_refused() -> None:
    """An event the step does not expect is a driver bug, raised as ValueError."""
    step, _ = open_step()
    with pytest.raises(ValueError):
        advance(step, ToolsDone(()))
    with pytest.raises(ValueError):
        advance(None, LlmAnswered(LlmResponse("x")))
    closed, _ = advance(step, LlmAnswered(LlmResponse("x")))
    with pytest.raises(ValueError):
        advance(closed, LlmAnswered(LlmResponse("x")))


def test_an_unservable_provider_stops_the_turn_without_calling() -> None:
    """A worker that cannot serve the session's provider closes the step at once:
    stopped(provider_unavailable) with the reason, the inputs kept, unseen steer handed on."""
    steer = SteerInput("in_2", Message("user", "also"))
    _, effects = open_step(steer=(steer,), llm_unavailable="ANTHROPIC_API_KEY is not set")
    plan = plan_of(effects)
    assert plan.outcome is not None
    assert (plan.outcome.status, plan.outcome.reason) == ("stopped", "provider_unavailable")
    assert plan.outcome.text == "the turn cannot run: ANTHROPIC_API_KEY is not set"
    assert texts(plan) == [("user", "hello"), ("turn_stopped", plan.outcome.text)]
    assert plan.returned_steer == ("in_2",)


def test_a_final_plan_carries_one_reply_per_input_that_asked() -> None:
    """Inputs with a reply route get the turn's outcome under a stable idempotency key;
    steer input the turn answered too, steer handed to the next turn not."""
    route = ReplyRoute("in_1", "app.answers", "app")
    turn = new_turn(replies=(route,))
    seen = SteerInput("in_2", Message("user", "also"), ReplyRoute("in_2", "app.b", "b"))
    step, _ = open_step(turn, steer=(seen,))
    plan = plan_of(advance(step, LlmAnswered(LlmResponse("done")))[1])
    assert [(r.idempotency_key, r.task, r.queue) for r in plan.replies] == [
        ("s1:turn_a:in_1", "app.answers", "app"),
        ("s1:turn_a:in_2", "app.b", "b"),
    ]
    body = plan.replies[0].body
    assert plan.outcome is not None and body["outcome"] == plan.outcome.to_json()
    assert (body["kind"], body["input_id"], body["turn_id"]) == ("turn_reply", "in_1", "turn_a")
    unreplied = plan_of(advance(open_step()[0], LlmAnswered(LlmResponse("done")))[1])
    assert unreplied.replies == ()
    assert plan.turn_commit_hash != unreplied.turn_commit_hash
    # Interrupted before the model answered: the steer input waits, so does its reply.
    step, _ = open_step(turn, steer=(seen,))
    cut = plan_of(advance(step, Interrupted())[1])
    assert [r.body["input_id"] for r in cut.replies] == ["in_1"]
