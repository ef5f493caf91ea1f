"""One protocol iteration: the LLM call, then its tool calls, each through the effect host."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lash_tasks.errors import EffectError, Interrupted, LashError, ProviderError, RecordedFailure
from lash_tasks.machine import Fence, LlmRequest, LlmResponse, Message, Node, NodeDraft, Usage
from lash_tasks.machine.ids import node_id_for
from lash_tasks.machine.turn_step import (
    NOT_RUN_TEXT,
    CallLlm,
    StepContext,
    TurnOutcome,
    after_llm,
    after_tools,
    begin_step,
)
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.runtime.attachment_content import with_attachment_content
from lash_tasks.runtime.effects import EffectRequest
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.step_control import StepControl
from lash_tasks.runtime.turn_start import StepWork, user_message
from lash_tasks.store.contracts import InputClaims
from lash_tasks.tools.contract import ToolContext, ToolResult

MAX_PARALLEL_TOOLS = 8


@dataclass
class Iteration:
    nodes: list[Node] = field(default_factory=list)
    outcome: TurnOutcome | None = None
    usage: Usage = field(default_factory=Usage)
    attachment_ids: list[str] = field(default_factory=list)
    # Accepted steer inputs no LLM answer came back for (interrupted): the final commit
    # returns them to pending instead of completing them.
    returned_input_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Steer:
    """An accepted steer input that is not in the graph yet."""

    input_id: str
    node_id: str
    message: Message


class _Appender:
    """Appends nodes with deterministic ids, so a replayed step builds the same nodes."""

    def __init__(self, runtime: SessionRuntime, work: StepWork, iteration: Iteration) -> None:
        self.runtime = runtime
        self.work = work
        self.iteration = iteration
        self.position = 0
        self.now = datetime.now(UTC).isoformat()

    def message(self, message: Message, node_id: str | None = None) -> None:
        self._add(NodeDraft.for_message(node_id or self._next_id(), message, self.now))

    def event(self, payload: dict[str, Any]) -> None:
        self._add(NodeDraft(self._next_id(), "event", payload, self.now))

    def _next_id(self) -> str:
        node_id = node_id_for(self.work.turn_id, self.work.step_index, self.position)
        self.position += 1
        return node_id

    def _add(self, draft: NodeDraft) -> None:
        self.iteration.nodes.append(self.runtime.graph.append(draft))


def run_iteration(
    core: LashCore,
    runtime: SessionRuntime,
    fence: Fence,
    work: StepWork,
    *,
    final_attempt: bool = True,
    control: StepControl | None = None,
) -> Iteration:
    control = control if control is not None else StepControl()
    iteration = Iteration()
    add = _Appender(runtime, work, iteration)
    steer: list[_Steer] = []
    if work.is_new_turn:
        if work.branch_from:
            runtime.branch_to(work.branch_from)
        for message in work.new_messages:
            add.message(message)
        core.tracer.emit(
            "turn_started", runtime.session_id, work.turn_id, inputs=list(work.input_ids)
        )
    elif work.input_claim_id is not None:
        store = core.require_store()
        llm_key = _llm_replay_key(runtime.session_id, work)
        # A re-run whose LLM call is already journaled must send the very same request, so
        # it takes no new steer input; those wait for the next step boundary. A cancelled
        # turn takes none either: its final commit defers them to the next turn.
        if not work.cancel_requested and not store.journal.has(
            f"turn:{runtime.session_id}:{work.turn_id}", llm_key
        ):
            store.inputs.accept_active(fence, work.input_claim_id, work.turn_id)
        steer = _unanswered_steer(store.inputs, runtime, work)
    policy = runtime.policy
    ctx = StepContext(
        model=policy.model.id,
        step_index=work.step_index,
        max_turns=policy.max_turns,
        system_prompt=policy.system_prompt,
        tools=tuple(runtime.tools.manifests()),
        cancel_requested=work.cancel_requested,
    )
    history = [_model_view(core, m) for m in runtime.graph.active_messages()]
    history += [s.message for s in steer]
    start = begin_step(history, ctx)
    if not isinstance(start, CallLlm):
        _take_steer(iteration, add, steer, answered=not _cancelled(start.outcome))
        iteration.outcome = start.outcome
    else:
        response, error = _call_llm(core, runtime, work, start.request, final_attempt, control)
        if response is not None:
            iteration.usage = response.usage
        decision = after_llm(response, error)
        _take_steer(iteration, add, steer, answered=not _cancelled(decision.outcome))
        for message in decision.messages:
            add.message(message)
        iteration.outcome = decision.outcome
        if decision.tool_calls:
            results, failure = _run_tools(core, runtime, work, decision.tool_calls, control)
            for result in results:
                iteration.attachment_ids.extend(result.attachments)
            closing = after_tools(results, ctx, interrupted=control.cancelled)
            for message in closing.messages:
                add.message(message)
            iteration.outcome = failure or closing.outcome
    if iteration.outcome is not None and iteration.outcome.status == "stopped":
        add.event({"type": "turn_stopped", **iteration.outcome.to_json()})
    return iteration


def _unanswered_steer(inputs: InputClaims, runtime: SessionRuntime, work: StepWork) -> list[_Steer]:
    """Every accepted steer input not yet in the graph: this step's, and any that a step
    which died before its commit accepted. Ids name the input, so none repeats."""
    assert work.input_claim_id is not None
    steer = []
    for accepted in inputs.accepted(runtime.session_id, work.input_claim_id):
        node_id = f"{work.turn_id}.steer.{accepted.input_id}"
        if node_id not in runtime.graph.nodes:
            steer.append(_Steer(accepted.input_id, node_id, user_message(accepted.input)))
    return steer


def _cancelled(outcome: TurnOutcome | None) -> bool:
    return outcome is not None and outcome.reason == "cancelled"


def _take_steer(iteration: Iteration, add: _Appender, steer: list[_Steer], answered: bool) -> None:
    """Steer inputs enter the transcript with the answer they got; interrupted before any
    answer, they go back to pending for the next turn and stay out of this one."""
    for item in steer:
        if answered:
            add.message(item.message, node_id=item.node_id)
        else:
            iteration.returned_input_ids.append(item.input_id)


def _llm_replay_key(session_id: str, work: StepWork) -> str:
    return f"{session_id}:{work.turn_id}:{work.step_index}:llm_call:0"


def _call_llm(
    core: LashCore,
    runtime: SessionRuntime,
    work: StepWork,
    request: LlmRequest,
    final_attempt: bool,
    control: StepControl,
) -> tuple[LlmResponse | None, dict[str, Any] | None]:
    effect = EffectRequest(
        session_id=runtime.session_id,
        turn_id=work.turn_id,
        replay_key=_llm_replay_key(runtime.session_id, work),
        envelope={"kind": "llm_call", "request": request.to_json()},
    )
    core.tracer.emit("llm_call_started", runtime.session_id, work.turn_id, step=work.step_index)
    attachments = _attachments(core, runtime, work)

    def call() -> dict[str, Any]:
        return core.llm.complete(
            with_attachment_content(attachments, request), interrupt=control.interrupt
        ).to_json()

    try:
        outcome = core.effects.run(effect, call, control)
    except RecordedFailure as exc:
        return None, exc.error
    except LashError as exc:
        if isinstance(exc, ProviderError) and exc.retryable and not final_attempt:
            raise  # the effect was released; the caller retries the step later
        # An interrupt's cut is journaled like a failure, so a re-run replays it.
        if isinstance(exc, (ProviderError, Interrupted)) or exc.code == "validation_error":
            core.tracer.emit("llm_call_failed", runtime.session_id, work.turn_id, error=exc.code)
            return None, exc.to_dict()
        raise
    response = LlmResponse.from_json(outcome)
    core.tracer.emit(
        "llm_call_completed",
        runtime.session_id,
        work.turn_id,
        step=work.step_index,
        usage=response.usage.to_json(),
        tool_calls=len(response.tool_calls),
    )
    return response, None


def _run_tools(
    core: LashCore, runtime: SessionRuntime, work: StepWork, calls: Any, control: StepControl
) -> tuple[list[Message], TurnOutcome | None]:
    """Run the step's tool calls concurrently; results keep the calls' order. Once the
    step is interrupted no further call starts (running ones finish and are kept)."""
    attachments = _attachments(core, runtime, work)

    def run_one(index: int) -> Message:
        call = calls[index]
        if control.interrupt.fired:
            if not control.cancelled:
                control.interrupt.check()  # the lease is lost: the step is discarded
            return Message(
                "tool", NOT_RUN_TEXT, tool_call_id=call.call_id, name=call.name, is_error=True
            )
        effect = EffectRequest(
            session_id=runtime.session_id,
            turn_id=work.turn_id,
            replay_key=(
                f"{runtime.session_id}:{work.turn_id}:{work.step_index}:tool_call:{index}:"
                f"{call.call_id}"
            ),
            envelope={"kind": "tool_call", "name": call.name, "arguments": call.arguments},
        )

        def execute() -> dict[str, Any]:
            context = ToolContext(runtime.session_id, work.turn_id, call.call_id, attachments)
            result = runtime.tools.execute(call, context)
            return _budgeted(core, result, attachments).to_json()

        outcome = core.effects.run(effect, execute, control)
        core.tracer.emit("tool_call_completed", runtime.session_id, work.turn_id, tool=call.name)
        return ToolResult.from_json(outcome).to_message(call.call_id, call.name)

    workers = max(1, min(MAX_PARALLEL_TOOLS, len(calls)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lash-tool") as pool:
        futures = [pool.submit(run_one, i) for i in range(len(calls))]
        results: list[Message] = []
        failure: TurnOutcome | None = None
        for call, future in zip(calls, futures, strict=True):
            try:
                results.append(future.result())
            except LashError as exc:
                # Transient errors retry the step; a journal that refused the outcome means
                # another worker owns this step now. Neither is the tool's failure.
                if not isinstance(exc, RecordedFailure) and (
                    exc.retryable or isinstance(exc, EffectError)
                ):
                    raise
                failure = failure or TurnOutcome(
                    "stopped",
                    "tool_failure",
                    f"tool {call.name!r} failed: {exc.message}",
                    detail=exc.to_dict(),
                )
                results.append(
                    Message(
                        "tool",
                        f"tool failed: {exc.message}",
                        tool_call_id=call.call_id,
                        name=call.name,
                        is_error=True,
                    )
                )
    return results, failure


def _budgeted(core: LashCore, result: ToolResult, attachments: Any) -> ToolResult:
    """Oversized output goes to the attachment store; the model sees a head/tail view."""
    if core.budget.fits(result.text) or attachments is None:
        return result
    attachment_id = attachments.put(result.text.encode(), "text/plain")
    view = core.budget.apply(result.text, attachment_id=attachment_id)
    return ToolResult(view.model_text, result.is_error, (*result.attachments, attachment_id))


def _model_view(core: LashCore, message: Message) -> Message:
    """Tool output kept in full in the graph is budgeted on its way to the model."""
    if message.role != "tool" or core.budget.fits(message.text):
        return message
    view = core.budget.apply(message.text)
    return Message(
        message.role,
        view.model_text,
        message.tool_calls,
        message.tool_call_id,
        message.name,
        message.is_error,
        message.attachments,
    )


def _attachments(core: LashCore, runtime: SessionRuntime, work: StepWork) -> Any:
    if core.blobs is None or core.store is None:
        return None
    from lash_tasks.attachments import attachments_for

    return attachments_for(
        core.store.manifest, core.blobs, runtime.session_id, "turn", work.turn_id
    )


def stopped_iteration(runtime: SessionRuntime, work: StepWork, error: LashError) -> Iteration:
    """End the turn on a terminal error with a readable, recorded outcome.

    `runtime` must be freshly assembled (the failed iteration's nodes are dropped). The
    turn's own inputs still enter the transcript, so the user sees what was answered.
    """
    core_store = runtime.core.store
    iteration = Iteration(
        outcome=TurnOutcome(
            "stopped", "runtime_error", f"the turn failed: {error.message}", detail=error.to_dict()
        )
    )
    add = _Appender(runtime, work, iteration)
    if work.is_new_turn:
        for message in work.new_messages:
            add.message(message)
    if work.input_claim_id is not None and core_store is not None:
        steer = _unanswered_steer(core_store.inputs, runtime, work)
        _take_steer(iteration, add, steer, answered=True)
    assert iteration.outcome is not None
    add.event({"type": "turn_stopped", **iteration.outcome.to_json()})
    return iteration


def unrecorded_stop(error: LashError, refused: LashError) -> Iteration:
    """The last resort when even the recorded stop was refused: settle the turn with no
    graph change and an outcome that names both causes."""
    return Iteration(
        outcome=TurnOutcome(
            "stopped",
            "runtime_error",
            f"the turn failed: {error.message}; its record was refused: {refused.message}",
            detail={**error.to_dict(), "record_refused": refused.to_dict()},
        )
    )
