"""The standard protocol as pure functions: no store, no clock, no provider."""

from __future__ import annotations

from collections.abc import Sequence

from lash_tasks.machine import LlmResponse, Message, ToolCall, ToolManifest, Usage
from lash_tasks.machine.ids import derive_turn_id, node_id_for
from lash_tasks.machine.turn_step import (
    TURN_LIMIT_NOTE,
    CallLlm,
    StepContext,
    StopBeforeCall,
    TurnOutcome,
    after_llm,
    after_tools,
    begin_step,
)

HISTORY = [Message("user", "what is 2+3?")]
CALC = ToolManifest("calculator", "adds", {"type": "object", "properties": {}})


def _ctx(step_index: int = 0, max_turns: int = 4, cancel: bool = False) -> StepContext:
    return StepContext(
        model="m",
        step_index=step_index,
        max_turns=max_turns,
        system_prompt="be brief",
        tools=(CALC,),
        cancel_requested=cancel,
    )


def test_begin_step_builds_the_llm_request_from_history_and_context() -> None:
    """begin_step asks for one LLM call carrying the model, system prompt, history and tools."""
    start = begin_step(HISTORY, _ctx())
    assert isinstance(start, CallLlm)
    assert start.request.model == "m"
    assert start.request.system == "be brief"
    assert start.request.messages == tuple(HISTORY)
    assert start.request.tools == (CALC,)


def test_answer_without_tool_calls_finishes_the_turn() -> None:
    """A non-empty answer with no tool calls appends the assistant message and finishes."""
    decision = after_llm(LlmResponse("five", usage=Usage(3, 1)), None)
    assert decision.messages == (Message("assistant", "five"),)
    assert decision.tool_calls == ()
    assert decision.outcome == TurnOutcome("finished", None, "five")


def test_answer_with_tool_calls_returns_them_and_after_tools_continues() -> None:
    """Tool calls come back for execution; their results keep the turn going below max_turns."""
    call = ToolCall("c1", "calculator", '{"expression":"2+3"}')
    decision = after_llm(LlmResponse("", tool_calls=(call,)), None)
    assert decision.tool_calls == (call,)
    assert decision.outcome is None
    assert decision.messages[0].role == "assistant"
    assert decision.messages[0].tool_calls == (call,)
    result = Message("tool", "5", tool_call_id="c1", name="calculator")
    closing = after_tools([result], _ctx(step_index=0, max_turns=4))
    assert closing.messages == (result,)
    assert closing.outcome is None


def test_reaching_max_turns_adds_the_limit_note_and_stops() -> None:
    """step_index+1 reaching max_turns appends a turn-limit note and stops (max_turns)."""
    result = Message("tool", "5", tool_call_id="c1", name="calculator")
    closing = after_tools([result], _ctx(step_index=2, max_turns=3))
    note = TURN_LIMIT_NOTE.format(n=3)
    assert closing.messages == (result, Message("assistant", note))
    assert closing.outcome is not None
    assert closing.outcome.status == "stopped"
    assert closing.outcome.reason == "max_turns"
    assert closing.outcome.text == note
    # One step earlier the turn still continues.
    assert after_tools([result], _ctx(step_index=1, max_turns=3)).outcome is None


def test_provider_error_stops_the_turn_and_keeps_retryable() -> None:
    """A provider failure ends the turn stopped(provider_error), carrying its retryable flag."""
    for retryable in (True, False):
        error = {"code": "provider_error", "message": "HTTP 503", "retryable": retryable}
        decision = after_llm(None, error)
        assert decision.messages == ()
        assert decision.outcome is not None
        assert decision.outcome.status == "stopped"
        assert decision.outcome.reason == "provider_error"
        assert decision.outcome.retryable is retryable
        assert "HTTP 503" in decision.outcome.text
        assert decision.outcome.detail == error


def test_empty_answer_without_tool_calls_is_a_provider_error() -> None:
    """An empty answer with no tool calls is stopped(provider_error), not finished."""
    decision = after_llm(LlmResponse("  \n", finish_reason="stop"), None)
    assert decision.messages == ()
    assert decision.outcome is not None
    assert decision.outcome.status == "stopped"
    assert decision.outcome.reason == "provider_error"
    assert decision.outcome.retryable is False


def test_cancel_requested_stops_before_calling_the_llm() -> None:
    """A requested cancel ends the turn stopped(cancelled) without an LLM request."""
    start = begin_step(HISTORY, _ctx(cancel=True))
    assert isinstance(start, StopBeforeCall)
    assert start.outcome.status == "stopped"
    assert start.outcome.reason == "cancelled"


def test_empty_history_stops_with_runtime_error() -> None:
    """With nothing to answer the step stops (runtime_error) instead of calling the LLM."""
    start = begin_step([], _ctx())
    assert isinstance(start, StopBeforeCall)
    assert start.outcome.reason == "runtime_error"


def test_derive_turn_id_is_deterministic_and_order_independent() -> None:
    """The turn id depends on the kind, the turn number, the session's creation time and the
    set of claimed ids (not their order): the same claimed ids in a later turn get a new id."""

    def turn_id(kind: str, ids: Sequence[str], seq: int = 1, created: int = 100) -> str:
        return derive_turn_id(kind, ids, turn_seq=seq, session_created_at=created)

    a = turn_id("inputs", ["i1", "i2", "i3"])
    assert a == turn_id("inputs", ["i3", "i1", "i2"])
    assert a == turn_id("inputs", ("i2", "i3", "i1"))
    assert a.startswith("turn_")
    assert a != turn_id("inputs", ["i1", "i2"])
    assert a != turn_id("queue", ["i1", "i2", "i3"])
    assert a != turn_id("inputs", ["i1", "i2", "i3"], seq=2)
    assert a != turn_id("inputs", ["i1", "i2", "i3"], created=101)


def test_outcome_round_trips_through_json_and_node_ids_are_deterministic() -> None:
    """TurnOutcome survives JSON; node ids are a pure function of turn, step and position."""
    outcome = TurnOutcome("stopped", "provider_error", "x", True, {"code": "c"})
    assert TurnOutcome.from_json(outcome.to_json()) == outcome
    assert node_id_for("turn_a", 1, 2) == node_id_for("turn_a", 1, 2)
    assert node_id_for("turn_a", 1, 2) != node_id_for("turn_a", 2, 1)


def test_an_interrupted_llm_call_stops_the_turn_cancelled() -> None:
    """An LLM call cut by an interrupt (live or replayed from the journal) ends the turn
    stopped(cancelled), not provider_error."""
    error = {"code": "interrupted", "message": "turn interrupted", "retryable": False}
    decision = after_llm(None, error)
    assert decision.messages == () and decision.tool_calls == ()
    assert decision.outcome is not None
    assert (decision.outcome.status, decision.outcome.reason) == ("stopped", "cancelled")


def test_interrupted_tools_keep_their_results_and_stop_cancelled() -> None:
    """Interrupted during its tools, the step keeps the results it has and stops, even with
    model calls left in the budget."""
    results = [Message("tool", "5", tool_call_id="c1", name="calculator")]
    decision = after_tools(results, _ctx(step_index=0, max_turns=4), interrupted=True)
    assert decision.messages == tuple(results)
    assert decision.outcome is not None and decision.outcome.reason == "cancelled"
