"""Performing a turn step's effects: the LLM call and the tool calls the protocol asks for.

Each performer runs the effect through the effect host and answers with the protocol event
that says what happened. Outcomes the step's closing commit can record are held for it (one
transaction fewer); the LLM call's outcome is recorded, with every tool call's journal entry,
before any tool runs; a tool that finishes while others still run records its own at once.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.errors import EffectError, Interrupted, LashError, ProviderError, RecordedFailure
from lash_tasks.events.emitter import StepEvents
from lash_tasks.machine import LlmResponse, Message
from lash_tasks.machine.protocol import (
    CallLlm,
    LlmAnswered,
    LlmFailed,
    RunTools,
    ToolInvocation,
    ToolOutcome,
    ToolsDone,
)
from lash_tasks.providers.registry import Unavailable
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.runtime.attachment_content import with_attachment_content
from lash_tasks.runtime.background_tools import start_background_tool
from lash_tasks.runtime.effects import EffectRequest
from lash_tasks.runtime.step_control import StepControl
from lash_tasks.store.records import ExecuteEffect, Lease, RecordedEffect
from lash_tasks.store.step_records import EffectOutcome, JournalDecision
from lash_tasks.tools.contract import ToolContext, ToolResult

MAX_PARALLEL_TOOLS = 8


@dataclass
class TurnEffects:
    """The effects of one step of one turn, and the outcomes it still holds for its commit."""

    runtime: SessionRuntime
    lease: Lease
    turn_id: str
    step_index: int
    control: StepControl
    events: StepEvents
    held: list[EffectOutcome] = field(default_factory=list)
    # Set when a transient failure gives the step up: the caller raises it to retry later.
    transient: LashError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def core(self) -> Any:
        return self.runtime.core

    def request(self, replay_key: str, envelope: dict[str, Any]) -> EffectRequest:
        return EffectRequest(self.runtime.session_id, self.turn_id, replay_key, envelope)

    # ── the LLM call ─────────────────────────────────────────────────────────────────────

    def call_llm(self, call: CallLlm, decision: JournalDecision | None) -> LlmAnswered | LlmFailed:
        """Replay the journaled call, or make it (`decision` is the open transaction's)."""
        core, session_id = self.core, self.runtime.session_id
        effect = self.request(call.replay_key, call.envelope)
        if isinstance(decision, RecordedEffect):
            try:
                outcome = core.effects.replay(decision)
            except RecordedFailure as exc:
                return LlmFailed(exc.error)
            return LlmAnswered(LlmResponse.from_json(outcome))
        core.tracer.emit("llm_call_started", session_id, self.turn_id, step=self.step_index)
        attachments = self.attachments()

        llm = self.runtime.llm
        # The protocol stops a turn whose provider is unavailable before it calls.
        assert not isinstance(llm, Unavailable), llm.reason

        def perform() -> dict[str, Any]:
            request = with_attachment_content(attachments, call.request)
            response = llm.complete(
                request, on_text_delta=self.events.text_delta, interrupt=self.control.interrupt
            )
            return dict(response.to_json())

        token = decision.lease_token if isinstance(decision, ExecuteEffect) else None
        try:
            done = core.effects.execute(effect, token, perform, self.control)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            # Freed in the journal, not recorded: the protocol says whether to retry later.
            self.transient = exc
            core.tracer.emit("llm_call_failed", session_id, self.turn_id, error=exc.code)
            return LlmFailed(exc.to_dict(), transient=True)
        if done.record is not None:
            self.held.append(done.record)
        if done.error is not None:
            error = done.error
            # An interrupt's cut is journaled like a failure, so a re-run replays it.
            if not isinstance(error, (ProviderError, Interrupted)) and (
                error.code != "validation_error"
            ):
                raise error
            core.tracer.emit("llm_call_failed", session_id, self.turn_id, error=error.code)
            return LlmFailed(error.to_dict())
        response = LlmResponse.from_json(done.outcome or {})
        core.tracer.emit(
            "llm_call_completed",
            session_id,
            self.turn_id,
            step=self.step_index,
            usage=response.usage.to_json(),
            tool_calls=len(response.tool_calls),
        )
        return LlmAnswered(response)

    # ── the tool calls ───────────────────────────────────────────────────────────────────

    def run_tools(self, run: RunTools) -> ToolsDone:
        """Journal every call (and the LLM outcome held so far) in one transaction, then run
        the calls concurrently. Once the step is interrupted no further call starts."""
        core = self.core
        requests = [self.request(i.replay_key, i.envelope) for i in run.invocations]
        holder = core.effects.holder
        decisions: list[JournalDecision | None] = [None] * len(requests)
        if holder is not None:
            llm = self.held.pop() if self.held else None
            decisions = list(
                core.require_store().steps.journal_tools(
                    self.lease.fence, llm, [r.slot() for r in requests], holder
                )
            )
        attachments = self.attachments()
        remaining = [len(requests)]
        attachment_ids: list[str] = []

        def run_one(index: int) -> ToolOutcome | None:
            invocation = run.invocations[index]
            if self.control.interrupt.fired:
                if not self.control.cancelled:
                    self.control.interrupt.check()  # the lease is lost: the step is discarded
                self._not_run(decisions[index], requests[index])
                return None
            outcome = self._tool(invocation, requests[index], decisions[index], attachments)
            self._finished(outcome, remaining, attachment_ids)
            return outcome[0]

        workers = max(1, min(MAX_PARALLEL_TOOLS, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lash-tool") as pool:
            # Each call in a copy of this step's context: its log records name the step.
            futures = [
                pool.submit(contextvars.copy_context().run, run_one, i)
                for i in range(len(requests))
            ]
            results = [f.result() for f in futures]
        return ToolsDone(
            tuple(r for r in results if r is not None),
            interrupted=self.control.cancelled,
            attachment_ids=tuple(attachment_ids),
        )

    def _not_run(self, decision: JournalDecision | None, effect: EffectRequest) -> None:
        """A call the interrupt kept from starting is recorded as not run, so a re-run of
        this step replays the same transcript instead of running it after all."""
        if isinstance(decision, ExecuteEffect):
            error = {"code": "interrupted", "message": "not run: the turn was interrupted"}
            record = EffectOutcome(
                effect.scope_id, effect.replay_key, decision.lease_token, error=error
            )
            with self._lock:
                self.held.append(record)

    def _tool(
        self,
        invocation: ToolInvocation,
        effect: EffectRequest,
        decision: JournalDecision | None,
        attachments: Any,
    ) -> tuple[ToolOutcome, EffectOutcome | None, tuple[str, ...]]:
        core, runtime, call = self.core, self.runtime, invocation.call
        self.events.tool_call_started(call.call_id, call.name)
        started = time.monotonic()
        record: EffectOutcome | None = None
        failure: dict[str, Any] | None = None
        try:
            if isinstance(decision, RecordedEffect):
                outcome = core.effects.replay(decision)
            else:

                def execute() -> dict[str, Any]:
                    context = ToolContext(
                        runtime.session_id, self.turn_id, call.call_id, attachments
                    )
                    background = runtime.tools.background(call.name)
                    if background is not None:
                        # Journaled like any tool call: a replay answers the same handle.
                        handle = start_background_tool(runtime, call, context, background)
                        return handle.to_json()
                    result = runtime.tools.execute(call, context)
                    return self._budgeted(result, attachments).to_json()

                token = decision.lease_token if isinstance(decision, ExecuteEffect) else None
                done = core.effects.execute(effect, token, execute, self.control)
                record = done.record
                if done.error is not None:
                    raise done.error
                outcome = done.outcome or {}
            result = ToolResult.from_json(outcome)
            message = result.to_message(call.call_id, call.name)
        except LashError as exc:
            # A journal that refused the outcome means another worker owns the step now;
            # neither that nor a transient fault is the tool's failure.
            if not isinstance(exc, RecordedFailure) and (
                exc.retryable or isinstance(exc, EffectError)
            ):
                raise
            failure = exc.to_dict()
            message = Message(
                "tool",
                f"tool failed: {exc.message}",
                tool_call_id=call.call_id,
                name=call.name,
                is_error=True,
            )
            result = ToolResult(message.text, True)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        self.events.tool_call_finished(
            call.call_id, call.name, elapsed_ms, failure.get("message") if failure else None
        )
        core.tracer.emit("tool_call_completed", runtime.session_id, self.turn_id, tool=call.name)
        return ToolOutcome(call.call_id, message, failure), record, result.attachments

    def _finished(
        self,
        done: tuple[ToolOutcome, EffectOutcome | None, tuple[str, ...]],
        remaining: list[int],
        attachment_ids: list[str],
    ) -> None:
        """The last call to finish leaves its record to the closing commit; an earlier one
        records its own now, so that a crash meanwhile cannot make it run twice."""
        _, record, attachments = done
        with self._lock:
            remaining[0] -= 1
            last = remaining[0] == 0
            attachment_ids.extend(attachments)
            if record is not None and last:
                self.held.append(record)
        if record is not None and not last:
            self.core.effects.record(record)

    def _budgeted(self, result: ToolResult, attachments: Any) -> ToolResult:
        """Oversized output goes to the attachment store; the model sees a head/tail view."""
        budget = self.core.budget
        if budget.fits(result.text) or attachments is None:
            return result
        attachment_id = attachments.put(result.text.encode(), "text/plain")
        view = budget.apply(result.text, attachment_id=attachment_id)
        return ToolResult(view.model_text, result.is_error, (*result.attachments, attachment_id))

    def attachments(self) -> Any:
        core = self.core
        if core.blobs is None or core.store is None:
            return None
        from lash_tasks.attachments import attachments_for

        return attachments_for(
            core.store.manifest, core.blobs, self.runtime.session_id, "turn", self.turn_id
        )
