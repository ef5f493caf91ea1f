"""The turn protocol: every decision of a turn step, as one pure function.

    step, effects = advance(step, event)

The step driver (`runtime/step_driver.py`) performs the effects — call the LLM, run the
tools, close the step in the store, or give the step up to be retried — and feeds back what
happened as events. It decides nothing. Everything a turn decides lives here: which messages
open it, which steer input joins it, how an answer, a tool result, a failure or an interrupt
becomes the next step or an outcome, and what the step's closing commit holds. Ids and
timestamps arrive in the events; nothing here reads a clock or does I/O.

Work queued for the earliest safe boundary (a background process's result) joins a running
turn like steer input: the step that took it shows it to the model after what the turn has
so far, and a step stopped before the model saw it gives it back to the queue.

    StepOpened ─▶ awaiting_llm ─LlmAnswered(tool calls)─▶ awaiting_tools ─ToolsDone─▶ closed
                      │                                                                ▲
                      └── answer / failure / interrupt / stop before calling ──────────┘
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lash_tasks.machine.commit_hash import turn_commit_hash
from lash_tasks.machine.commits import OutboxReply
from lash_tasks.machine.graph import NodeDraft, SessionGraph
from lash_tasks.machine.ids import (
    llm_replay_key,
    node_id_for,
    steer_node_id,
    tool_replay_key,
    wake_node_id,
)
from lash_tasks.machine.messages import LlmRequest, LlmResponse, Message, ToolCall, Usage
from lash_tasks.machine.turn_state import ReplyRoute, StepContext, TurnOutcome, TurnState

TURN_LIMIT_NOTE = "[turn stopped: reached the limit of {n} model calls for one turn]"
INTERRUPTED = "interrupted"  # the error code of an LLM call cut by an interrupt
INTERRUPTED_TEXT = "turn interrupted on request"
CANCELLED_TEXT = "turn cancelled on request"
NOT_RUN_TEXT = "tool call not run: the turn was interrupted"

REPLY_SCHEMA_VERSION = 1

Phase = Literal["awaiting_llm", "awaiting_tools", "closed"]


# ── events ────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SteerInput:
    """Steer input the running turn accepted. Its node id names the input, so a step that
    re-runs after a crash never adds it twice. `reply` is where its caller wants the turn's
    outcome."""

    input_id: str
    message: Message
    reply: ReplyRoute | None = None


@dataclass(frozen=True)
class BoundaryWork:
    """Queued turn work the running turn took at a step boundary (a background process's
    result), one message per payload. Its node ids name the batch, so a step that re-runs
    after a crash never adds it twice."""

    batch_id: str
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class StepOpened:
    """The step holds the lease. `graph` stands where the turn continues (it is only read);
    `steer` lists every steer input the turn accepted, in order; `wakes` likewise every
    batch of queued work it took at a step boundary. `llm_unavailable` says why this worker
    cannot serve the session's LLM provider."""

    turn: TurnState
    graph: SessionGraph
    context: StepContext
    now: str
    steer: tuple[SteerInput, ...] = ()
    branch_error: str | None = None
    llm_unavailable: str | None = None
    wakes: tuple[BoundaryWork, ...] = ()


@dataclass(frozen=True)
class LlmAnswered:
    response: LlmResponse


@dataclass(frozen=True)
class LlmFailed:
    """The LLM call failed; `error` is `LashError.to_dict()`. `transient` failures (429, 5xx
    after the provider's own retries) were not journaled: the step may be retried instead."""

    error: dict[str, Any]
    transient: bool = False


@dataclass(frozen=True)
class ToolOutcome:
    """One tool call's result message; `failure` when the call itself failed for good."""

    call_id: str
    result: Message
    failure: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolsDone:
    """The step's tool calls ended. After an interrupt, calls that never started have no
    outcome; calls that ran keep theirs."""

    outcomes: tuple[ToolOutcome, ...]
    interrupted: bool = False
    attachment_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interrupted:
    """The turn was interrupted between effects (before its tool calls started)."""


@dataclass(frozen=True)
class StepFailed:
    """An error no re-run can fix. `record_refused` is set when even the stopped record of
    this failure was refused by the store: the turn then ends with no graph change."""

    error: dict[str, Any]
    record_refused: dict[str, Any] | None = None


Event = StepOpened | LlmAnswered | LlmFailed | ToolsDone | Interrupted | StepFailed


# ── effects ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CallLlm:
    request: LlmRequest
    replay_key: str
    envelope: dict[str, Any]


@dataclass(frozen=True)
class ToolInvocation:
    call: ToolCall
    replay_key: str
    envelope: dict[str, Any]


@dataclass(frozen=True)
class RunTools:
    invocations: tuple[ToolInvocation, ...]


@dataclass(frozen=True)
class RetryLater:
    """Give the step up without a commit; it runs again later (its attempt counts)."""

    error: dict[str, Any]


@dataclass(frozen=True)
class StepPlan:
    """What the step's closing commit applies.

    `next_turn` is the turn after this step, or None when the step ended it with `outcome`.
    `returned_steer` are steer inputs that never reached the model: they wait for the next
    turn; `returned_wakes` likewise the queued batches (they are ready again). A final
    commit carries the turn stamp: `result` and its `turn_commit_hash`, and the `replies`
    its inputs asked for; it settles the turn's queue claim unless `settles_queue_claim` is
    False (everything it held was returned).
    """

    turn: TurnState
    nodes: tuple[NodeDraft, ...]
    next_turn: TurnState | None
    outcome: TurnOutcome | None
    usage: Usage
    attachment_ids: tuple[str, ...]
    returned_steer: tuple[str, ...] = ()
    result: dict[str, Any] | None = None
    turn_commit_hash: str | None = None
    replies: tuple[OutboxReply, ...] = ()
    returned_wakes: tuple[str, ...] = ()
    settles_queue_claim: bool = True

    @property
    def final(self) -> bool:
        return self.next_turn is None


@dataclass(frozen=True)
class CloseStep:
    plan: StepPlan


Effect = CallLlm | RunTools | RetryLater | CloseStep


# ── state ─────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Step:
    """One step in flight: its turn, what it appended so far, and what it waits for."""

    turn: TurnState
    context: StepContext
    now: str
    phase: Phase = "awaiting_llm"
    opening: tuple[NodeDraft, ...] = ()
    steer: tuple[NodeDraft, ...] = ()
    steer_ids: tuple[str, ...] = ()
    # Where the callers of every steer input the turn accepted want its outcome.
    steer_replies: tuple[ReplyRoute, ...] = ()
    wakes: tuple[NodeDraft, ...] = ()
    wake_ids: tuple[str, ...] = ()
    # The turn's queue claim holds work this step cannot give back: the batches that
    # opened the turn, or ones an earlier step already showed the model.
    queue_work_kept: bool = False
    drafts: tuple[NodeDraft, ...] = ()
    position: int = 0
    usage: Usage = field(default_factory=Usage)
    attachment_ids: tuple[str, ...] = ()
    pending_calls: tuple[ToolCall, ...] = ()


def advance(step: Step | None, event: Event) -> tuple[Step, tuple[Effect, ...]]:
    """The protocol's one transition function. An event the state does not expect raises
    `ValueError`: that is a bug in the driver, never an outcome."""
    if isinstance(event, StepOpened):
        if step is not None:
            raise ValueError("a step opens once")
        return _opened(event)
    if step is None or step.phase == "closed":
        raise ValueError(f"{type(event).__name__} arrived for a step that is not running")
    if isinstance(event, StepFailed):
        return _failed(step, event)
    if step.phase == "awaiting_llm":
        if isinstance(event, LlmAnswered):
            return _answered(step, event.response)
        if isinstance(event, LlmFailed):
            return _llm_failed(step, event)
        if isinstance(event, Interrupted):
            return _cancelled(step, INTERRUPTED_TEXT, {})
    if step.phase == "awaiting_tools":
        if isinstance(event, ToolsDone):
            return _tools_done(step, event)
        if isinstance(event, Interrupted):
            return _tools_done(step, ToolsDone((), interrupted=True))
    raise ValueError(f"{type(event).__name__} is not expected while {step.phase}")


def opening_for_inputs(payloads: Sequence[Mapping[str, Any]]) -> tuple[Message, ...]:
    """The messages that open a turn claiming these inputs: each as the user wrote it, with
    the attachments it names."""
    return tuple(_user_message(p) for p in payloads)


def replies_for_inputs(
    inputs: Sequence[tuple[str, Mapping[str, Any]]],
) -> tuple[ReplyRoute, ...]:
    """The reply routes of a turn's inputs (`(input_id, payload)` pairs) that asked for one."""
    routes = (ReplyRoute.of_input(input_id, payload) for input_id, payload in inputs)
    return tuple(r for r in routes if r is not None)


def opening_for_wakes(payloads: Sequence[Mapping[str, Any]]) -> tuple[Message, ...]:
    """Queued turn work reaches the model as user-role notices, never as commands."""
    return tuple(_wake_message(p) for p in payloads)


def boundary_work(batch_id: str, payloads: Sequence[Mapping[str, Any]]) -> BoundaryWork:
    """A batch a running turn took at a step boundary, as the model will see it."""
    return BoundaryWork(batch_id, opening_for_wakes(payloads))


# ── transitions ───────────────────────────────────────────────────────────────────────────


def _opened(event: StepOpened) -> tuple[Step, tuple[Effect, ...]]:
    turn, ctx, now = event.turn, event.context, event.now
    step = Step(turn=turn, context=ctx, now=now)
    # A first step re-run after a crash rebuilds the very same opening nodes.
    opening = tuple(
        NodeDraft.for_message(node_id_for(turn.turn_id, 0, i), message, now)
        for i, message in enumerate(turn.opening if turn.step_index == 0 else ())
    )
    fresh = [
        s for s in event.steer if steer_node_id(turn.turn_id, s.input_id) not in event.graph.nodes
    ]
    steer = tuple(
        NodeDraft.for_message(steer_node_id(turn.turn_id, s.input_id), s.message, now)
        for s in fresh
    )
    fresh_wakes = [
        w for w in event.wakes if wake_node_id(turn.turn_id, w.batch_id, 0) not in event.graph.nodes
    ]
    wakes = tuple(
        NodeDraft.for_message(wake_node_id(turn.turn_id, w.batch_id, i), message, now)
        for w in fresh_wakes
        for i, message in enumerate(w.messages)
    )
    step = replace(
        step,
        opening=opening,
        steer=steer,
        steer_ids=tuple(s.input_id for s in fresh),
        steer_replies=tuple(s.reply for s in event.steer if s.reply is not None),
        wakes=wakes,
        wake_ids=tuple(w.batch_id for w in fresh_wakes),
        queue_work_kept=bool(turn.batch_ids) or len(fresh_wakes) < len(event.wakes),
        position=len(opening),
    )
    if turn.attempts > ctx.max_attempts:
        return _failed(step, StepFailed(_exhausted(turn)))
    if event.branch_error is not None:
        return _failed(step, StepFailed({"code": "node_not_found", "message": event.branch_error}))
    if turn.cancel_requested:
        return _cancelled(step, CANCELLED_TEXT, {})
    if event.llm_unavailable is not None:
        return _unavailable(step, event.llm_unavailable)
    history = [
        *event.graph.active_messages(),
        *(_message(d) for d in opening),
        *(_message(d) for d in steer),
        *(_message(d) for d in wakes),
    ]
    if not history:
        return _failed(
            step, StepFailed({"code": "runtime_error", "message": "the turn has no messages"})
        )
    request = LlmRequest(
        model=ctx.model,
        messages=tuple(_model_view(m, ctx) for m in history),
        system=ctx.system_prompt,
        tools=ctx.tools,
    )
    envelope = {"kind": "llm_call", "request": request.to_json()}
    return step, (
        CallLlm(request, llm_replay_key(ctx.session_id, turn.turn_id, turn.step_index), envelope),
    )


def _answered(step: Step, response: LlmResponse) -> tuple[Step, tuple[Effect, ...]]:
    step = replace(step, usage=step.usage + response.usage)
    assistant = Message("assistant", response.text, tool_calls=response.tool_calls)
    if response.tool_calls:
        step = replace(
            _append(step, assistant), phase="awaiting_tools", pending_calls=response.tool_calls
        )
        invocations = tuple(
            ToolInvocation(
                call,
                tool_replay_key(
                    step.context.session_id,
                    step.turn.turn_id,
                    step.turn.step_index,
                    index,
                    call.call_id,
                ),
                {"kind": "tool_call", "name": call.name, "arguments": call.arguments},
            )
            for index, call in enumerate(response.tool_calls)
        )
        return step, (RunTools(invocations),)
    if not response.text.strip():
        outcome = TurnOutcome(
            "stopped",
            "provider_error",
            "LLM provider returned an empty answer with no tool calls",
            detail={"finish_reason": response.finish_reason},
        )
        return _close(step, outcome)
    return _close(_append(step, assistant), TurnOutcome("finished", None, response.text))


def _llm_failed(step: Step, event: LlmFailed) -> tuple[Step, tuple[Effect, ...]]:
    error = event.error
    if error.get("code") == INTERRUPTED:
        # Cut mid-call on request, now or (replayed from the journal) by an earlier run.
        return _cancelled(step, INTERRUPTED_TEXT, error)
    ctx, turn = step.context, step.turn
    if event.transient and not ctx.last_chance and turn.attempts < ctx.max_attempts:
        return step, (RetryLater(error),)
    outcome = TurnOutcome(
        "stopped",
        "provider_error",
        f"LLM provider failed: {error.get('message', 'unknown error')}",
        retryable=bool(error.get("retryable", False)),
        detail=error,
    )
    return _close(step, outcome)


def _tools_done(step: Step, event: ToolsDone) -> tuple[Step, tuple[Effect, ...]]:
    by_id = {o.call_id: o for o in event.outcomes}
    failure: TurnOutcome | None = None
    for call in step.pending_calls:
        outcome = by_id.get(call.call_id)
        if outcome is None:
            if not event.interrupted:
                raise ValueError(f"no outcome for tool call {call.call_id!r}")
            note = Message(
                "tool", NOT_RUN_TEXT, tool_call_id=call.call_id, name=call.name, is_error=True
            )
            step = _append(step, note)
            continue
        step = _append(step, outcome.result)
        if outcome.failure is not None and failure is None:
            failure = TurnOutcome(
                "stopped",
                "tool_failure",
                f"tool {call.name!r} failed: {outcome.failure.get('message', '')}",
                detail=outcome.failure,
            )
    step = replace(
        step, pending_calls=(), attachment_ids=step.attachment_ids + event.attachment_ids
    )
    if event.interrupted:
        return _close(step, TurnOutcome("stopped", "cancelled", INTERRUPTED_TEXT))
    if failure is not None:
        return _close(step, failure)
    limit = step.context.max_turns
    if step.turn.step_index + 1 >= limit:
        note = Message("assistant", TURN_LIMIT_NOTE.format(n=limit))
        return _close(_append(step, note), TurnOutcome("stopped", "max_turns", note.text))
    return _close(step, None)


def _cancelled(step: Step, text: str, detail: dict[str, Any]) -> tuple[Step, tuple[Effect, ...]]:
    """Stopped before the model answered: steer input and queued work it never saw wait for
    the next turn."""
    returned, wakes = step.steer_ids, step.wake_ids
    step = replace(step, steer=(), steer_ids=(), wakes=(), wake_ids=())
    outcome = TurnOutcome("stopped", "cancelled", text, detail=detail)
    return _close(step, outcome, returned, returned_wakes=wakes)


def _unavailable(step: Step, reason: str) -> tuple[Step, tuple[Effect, ...]]:
    """No LLM call: this worker cannot serve the session's provider. The turn's inputs are
    answered with the reason; steer input the model never saw waits for the next turn."""
    returned = step.steer_ids
    step = replace(step, steer=(), steer_ids=())
    outcome = TurnOutcome(
        "stopped",
        "provider_unavailable",
        f"the turn cannot run: {reason}",
        detail={"provider": step.context.provider, "reason": reason},
    )
    return _close(step, outcome, returned)


def _failed(step: Step, event: StepFailed) -> tuple[Step, tuple[Effect, ...]]:
    """A terminal failure drops what this step produced but keeps the turn's own inputs, so
    the user sees what was answered and why it stopped — unless even that record was
    refused, when the turn ends with no graph change at all."""
    error = event.error
    message = str(error.get("message", "unknown error"))
    if event.record_refused is not None:
        refused = event.record_refused
        outcome = TurnOutcome(
            "stopped",
            "runtime_error",
            f"the turn failed: {message}; its record was refused: {refused.get('message')}",
            detail={**error, "record_refused": refused},
        )
        bare = replace(
            step,
            opening=(),
            steer=(),
            wakes=(),
            wake_ids=(),
            drafts=(),
            attachment_ids=(),
            pending_calls=(),
        )
        # Queued work this step took never reached the graph: it goes back to the queue.
        return _close(bare, outcome, returned_wakes=step.wake_ids, record_stop=False)
    step = replace(step, drafts=(), position=len(step.opening), attachment_ids=(), pending_calls=())
    outcome = TurnOutcome("stopped", "runtime_error", f"the turn failed: {message}", detail=error)
    return _close(step, outcome)


def _close(
    step: Step,
    outcome: TurnOutcome | None,
    returned_steer: tuple[str, ...] = (),
    *,
    returned_wakes: tuple[str, ...] = (),
    record_stop: bool = True,
) -> tuple[Step, tuple[Effect, ...]]:
    if outcome is not None and outcome.status == "stopped" and record_stop:
        step = _append_event(step, {"type": "turn_stopped", **outcome.to_json()})
    turn = step.turn
    nodes = step.opening + step.steer + step.wakes + step.drafts
    # The commit that writes a reference into the graph stamps the attachment it names.
    named = (a for d in nodes if d.kind == "message" for a in d.payload.get("attachments", ()))
    step = replace(step, attachment_ids=tuple(dict.fromkeys((*step.attachment_ids, *named))))
    if outcome is None:
        plan = StepPlan(
            turn=turn,
            nodes=nodes,
            next_turn=turn.next_step(),
            outcome=None,
            usage=step.usage,
            attachment_ids=step.attachment_ids,
        )
    else:
        result = {
            "turn_id": turn.turn_id,
            "outcome": outcome.to_json(),
            "input_ids": list(turn.input_ids),
            "batch_ids": list(turn.batch_ids),
            "steps": turn.step_index + 1,
        }
        replies = _replies(step, outcome, result, returned_steer)
        content: dict[str, Any] = {
            "session_id": step.context.session_id,
            "nodes": [{"kind": d.kind, "payload": dict(d.payload)} for d in nodes],
            "attachments": sorted(step.attachment_ids),
            "returned": sorted(returned_steer),
            "result": result,
        }
        if replies:  # only when present: other turns keep their hashes
            content["replies"] = [r.idempotency_key for r in replies]
        if returned_wakes:  # absent otherwise: turns without any keep their hashes
            content["returned_wakes"] = sorted(returned_wakes)
        digest = turn_commit_hash(content)
        plan = StepPlan(
            turn=turn,
            nodes=nodes,
            next_turn=None,
            outcome=outcome,
            usage=step.usage,
            attachment_ids=step.attachment_ids,
            returned_steer=returned_steer,
            result=result,
            turn_commit_hash=digest,
            replies=replies,
            returned_wakes=returned_wakes,
            settles_queue_claim=step.queue_work_kept or bool(step.wake_ids),
        )
    return replace(step, phase="closed"), (CloseStep(plan),)


def _replies(
    step: Step, outcome: TurnOutcome, result: dict[str, Any], returned: tuple[str, ...]
) -> tuple[OutboxReply, ...]:
    """One reply per input of the turn that asked for one. A steer input handed back to the
    next turn gets its reply from that turn."""
    session_id, turn_id = step.context.session_id, step.turn.turn_id
    routes = [*step.turn.replies, *(r for r in step.steer_replies if r.input_id not in returned)]
    replies = []
    for route in dict.fromkeys(routes):
        key = f"{session_id}:{turn_id}:{route.input_id}"
        body = {
            "kind": "turn_reply",
            "schema_version": REPLY_SCHEMA_VERSION,
            "idempotency_key": key,
            "session_id": session_id,
            "input_id": route.input_id,
            "turn_id": turn_id,
            "input_ids": result["input_ids"],
            "steps": result["steps"],
            "outcome": outcome.to_json(),
        }
        replies.append(OutboxReply(session_id, key, route.task, route.queue, body))
    return tuple(replies)


# ── helpers ───────────────────────────────────────────────────────────────────────────────


def _append(step: Step, message: Message) -> Step:
    node_id = node_id_for(step.turn.turn_id, step.turn.step_index, step.position)
    draft = NodeDraft.for_message(node_id, message, step.now)
    return replace(step, drafts=(*step.drafts, draft), position=step.position + 1)


def _append_event(step: Step, payload: dict[str, Any]) -> Step:
    node_id = node_id_for(step.turn.turn_id, step.turn.step_index, step.position)
    draft = NodeDraft(node_id, "event", payload, step.now)
    return replace(step, drafts=(*step.drafts, draft), position=step.position + 1)


def _message(draft: NodeDraft) -> Message:
    return Message.from_json(dict(draft.payload))


def _exhausted(turn: TurnState) -> dict[str, Any]:
    failures = turn.attempts - 1
    last = turn.last_error
    reason = (
        f"{last.get('code')}: {last.get('message')}"
        if last
        else "the step never finished (its worker was lost)"
    )
    return {
        "code": "step_attempts_exhausted",
        "message": f"step {turn.step_index} failed {failures} times; last error: {reason}",
        "attempts": failures,
        "last_error": last,
    }


def _model_view(message: Message, ctx: StepContext) -> Message:
    """Tool output kept in full in the graph is budgeted on its way to the model."""
    if message.role != "tool" or ctx.budget.fits(message.text):
        return message
    return replace(message, text=ctx.budget.apply(message.text).model_text)


def _user_message(payload: Mapping[str, Any]) -> Message:
    return Message("user", str(payload.get("text", "")), attachments=_attachment_ids(payload))


def _attachment_ids(payload: Mapping[str, Any]) -> tuple[str, ...]:
    attachments = payload.get("attachments", ())
    return tuple(str(a) for a in attachments) if isinstance(attachments, list | tuple) else ()


def _wake_message(payload: Mapping[str, Any]) -> Message:
    """A process's result reads like a tool result that names the call which started it.
    It is a user-role message: a `tool` message must follow the model's call at once (the
    LLM APIs refuse one that arrives turns later), and its call was answered long ago with
    the process handle."""
    if payload.get("type") == "process_wake":
        status = payload.get("status", "finished")
        summary = payload.get("summary", "")
        call_id = payload.get("call_id")
        answers = f"; result of tool call {call_id}" if call_id else ""
        text = f"[background process {payload.get('process_id')} {status}{answers}] {summary}"
        return Message("user", text.strip(), attachments=_attachment_ids(payload))
    return Message("user", str(payload.get("text", dict(payload))))
