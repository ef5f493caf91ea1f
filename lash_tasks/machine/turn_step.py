"""The standard protocol as pure functions: one step = one LLM call plus its tool calls.

The runtime drives it: `begin_step` says which LLM request to make (or that the
turn stops before calling), `after_llm` turns the answer into messages and tool
calls, `after_tools` closes the step. Ids and timestamps come in as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lash_tasks.machine.messages import LlmRequest, LlmResponse, Message, ToolCall, ToolManifest

StopReason = Literal["cancelled", "max_turns", "provider_error", "tool_failure", "runtime_error"]


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended. `finished` carries the final answer; `stopped` names why."""

    status: Literal["finished", "stopped"]
    reason: StopReason | None = None
    text: str = ""
    retryable: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "text": self.text,
            "retryable": self.retryable,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TurnOutcome:
        return cls(
            status=data["status"],
            reason=data.get("reason"),
            text=data.get("text", ""),
            retryable=bool(data.get("retryable", False)),
            detail=dict(data.get("detail", {})),
        )


@dataclass(frozen=True)
class StepContext:
    """What one step knows about its turn."""

    model: str
    step_index: int
    max_turns: int
    system_prompt: str | None = None
    tools: tuple[ToolManifest, ...] = ()
    cancel_requested: bool = False


@dataclass(frozen=True)
class CallLlm:
    request: LlmRequest


@dataclass(frozen=True)
class StopBeforeCall:
    outcome: TurnOutcome
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True)
class StepDecision:
    """What the step appends and what happens next: run tools, or end the turn."""

    messages: tuple[Message, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    outcome: TurnOutcome | None = None


TURN_LIMIT_NOTE = "[turn stopped: reached the limit of {n} model calls for one turn]"
# The error code of an LLM call cut by an interrupt (`lash_tasks.errors.Interrupted`).
INTERRUPTED = "interrupted"
INTERRUPTED_TEXT = "turn interrupted on request"
NOT_RUN_TEXT = "tool call not run: the turn was interrupted"


def begin_step(history: Sequence[Message], ctx: StepContext) -> CallLlm | StopBeforeCall:
    """Decide the step's LLM request, or stop first (cancel requested, nothing to answer)."""
    if ctx.cancel_requested:
        return StopBeforeCall(TurnOutcome("stopped", "cancelled", "turn cancelled on request"))
    if not history:
        return StopBeforeCall(
            TurnOutcome("stopped", "runtime_error", "the turn has no messages to answer")
        )
    request = LlmRequest(
        model=ctx.model, messages=tuple(history), system=ctx.system_prompt, tools=ctx.tools
    )
    return CallLlm(request)


def after_llm(response: LlmResponse | None, error: dict[str, Any] | None) -> StepDecision:
    """Turn the LLM's answer (or its failure) into messages, tool calls or an outcome."""
    if error is not None and error.get("code") == INTERRUPTED:
        # Cut mid-call on request, now or (replayed from the journal) by an earlier run.
        return StepDecision(
            messages=(), outcome=TurnOutcome("stopped", "cancelled", INTERRUPTED_TEXT, detail=error)
        )
    if error is not None or response is None:
        err = error or {"message": "no response"}
        return StepDecision(
            messages=(),
            outcome=TurnOutcome(
                "stopped",
                "provider_error",
                f"LLM provider failed: {err.get('message', 'unknown error')}",
                retryable=bool(err.get("retryable", False)),
                detail=err,
            ),
        )
    assistant = Message("assistant", response.text, tool_calls=response.tool_calls)
    if response.tool_calls:
        return StepDecision(messages=(assistant,), tool_calls=response.tool_calls)
    if not response.text.strip():
        return StepDecision(
            messages=(),
            outcome=TurnOutcome(
                "stopped",
                "provider_error",
                "LLM provider returned an empty answer with no tool calls",
                detail={"finish_reason": response.finish_reason},
            ),
        )
    return StepDecision(messages=(assistant,), outcome=TurnOutcome("finished", None, response.text))


def after_tools(
    results: Sequence[Message], ctx: StepContext, *, interrupted: bool = False
) -> StepDecision:
    """Append tool results; stop when interrupted (the results of calls that had started
    are kept) or with `max_turns` when the model-call budget is spent."""
    if interrupted:
        return StepDecision(
            messages=tuple(results), outcome=TurnOutcome("stopped", "cancelled", INTERRUPTED_TEXT)
        )
    if ctx.step_index + 1 >= ctx.max_turns:
        note = Message("assistant", TURN_LIMIT_NOTE.format(n=ctx.max_turns))
        return StepDecision(
            messages=(*results, note),
            outcome=TurnOutcome("stopped", "max_turns", note.text),
        )
    return StepDecision(messages=tuple(results))
