"""`run_step`: one delivery of a session's step poke (DESIGN §4.1).

The driver decides nothing. It opens the step (`store.steps.open`: one transaction that takes
the lease and the work), gives what it found to the turn protocol (`machine/protocol.py`),
performs the effects the protocol answers with — the LLM call, the tool calls — feeding each
result back as an event, and closes the step with the commit the protocol planned (one more
transaction). When the session has more work it goes on with the lease it holds, for a few
steps at most, instead of a poke round trip through the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from lash_tasks.errors import (
    ConflictError,
    EffectBusy,
    EffectError,
    HeadRevisionConflict,
    LashError,
    LeaseError,
    LeaseLost,
    ReplayMismatch,
    StaleClaim,
    TurnCommitConflict,
)
from lash_tasks.events.emitter import StepEvents
from lash_tasks.machine import Node, ReplyRoute, StepContext
from lash_tasks.machine.ids import check_session_id
from lash_tasks.machine.protocol import (
    CallLlm,
    CloseStep,
    Effect,
    RetryLater,
    RunTools,
    SteerInput,
    Step,
    StepFailed,
    StepOpened,
    StepPlan,
    advance,
    boundary_work,
    opening_for_inputs,
)
from lash_tasks.providers.registry import Unavailable
from lash_tasks.runtime import log_context
from lash_tasks.runtime.assembly import SessionRuntime, build_runtime
from lash_tasks.runtime.effects import EffectRequest
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.lease_keeper import LeaseKeeper
from lash_tasks.runtime.session_command import command_draft
from lash_tasks.runtime.step_commit import adopt, commit_draft, place
from lash_tasks.runtime.step_control import StepControl
from lash_tasks.runtime.turn_effects import TurnEffects
from lash_tasks.store.records import ActivePath, Busy, Lease, LoadedSession
from lash_tasks.store.step_records import (
    ClosedStep,
    CloseRequest,
    EffectSlot,
    OpenedStep,
    OpenRequest,
)

log = logging.getLogger(__name__)

StepStatus = Literal[
    "busy", "idle", "command", "progressed", "finished", "lease_lost", "conflict", "effect_busy"
]
# A delivery goes on with the lease it holds while the session has work (at most
# `LashCore.steps_per_delivery` steps), and for no longer than this.
DELIVERY_BUDGET_S = 20.0


@dataclass(frozen=True)
class StepResult:
    """What one delivery did (its last step). `more_work` asks the caller to poke again."""

    session_id: str
    status: StepStatus
    more_work: bool = False
    retry_after_ms: int | None = None
    turn_id: str | None = None
    head_revision: int | None = None
    outcome: dict[str, Any] | None = None
    steps: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    # Set when a turn of a subagent's child session finished in this delivery: the process
    # waiting for its answer (the caller pokes it).
    finished_for_process: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "more_work": self.more_work,
            "retry_after_ms": self.retry_after_ms,
            "turn_id": self.turn_id,
            "head_revision": self.head_revision,
            "outcome": self.outcome,
            "steps": self.steps,
        }


# Steps running in this process, by lease identity. The store lets the same owner and
# incarnation re-enter a lease it holds, so two threads of one worker (threads pool) would
# otherwise share a lease: run one session's step concurrently, and release the lease
# under each other's feet. A second poke for a session this process is stepping is `busy`.
_running: dict[tuple[str, str, str], StepControl] = {}
_running_lock = threading.Lock()


def run_step(core: LashCore, session_id: str, *, final_attempt: bool = True) -> StepResult:
    """Run the session's next step (and, while it has work, a few more). Never raises for
    busy or stale leases.

    With `final_attempt=False` a retryable LLM provider failure (429, 5xx) raises, so the
    caller can retry the step later; on the final attempt it ends the turn with a recorded
    `stopped(provider_error)` outcome that keeps its `retryable` flag.
    """
    check_session_id(session_id)
    key = (core.owner_id, core.incarnation_id, session_id)
    with _running_lock:
        running = _running.get(key)
        if running is not None:
            # A step of ours that gave its lease up (hung past its limit) holds the session no
            # more: hand the poke back soon, for a worker that can take the session over.
            wait = core.lease.renew_ms if running.lease_lost else core.lease.ttl_ms
            return StepResult(session_id, "busy", retry_after_ms=wait)
        control = _running[key] = StepControl()
    try:
        with log_context.delivery(session_id):
            return _Delivery(core, session_id, final_attempt, control).run()
    finally:
        with _running_lock:
            _running.pop(key, None)


@dataclass
class _Opened:
    """A turn step the planner built inside the open transaction."""

    runtime: SessionRuntime
    step: Step
    effects: tuple[Effect, ...]
    opened_step: Step  # the step as it opened: what a terminal failure closes from


class _Delivery:
    def __init__(
        self, core: LashCore, session_id: str, final_attempt: bool, control: StepControl
    ) -> None:
        self.core = core
        self.store = core.require_store()
        self.session_id = session_id
        self.final_attempt = final_attempt
        self.control = control
        self.planned: _Opened | None = None
        self.steps = 0
        self.parent_process_id: str | None = None
        self.finished_for_process: str | None = None

    def run(self) -> StepResult:
        result = self._run()
        if self.finished_for_process is not None:
            result = replace(result, finished_for_process=self.finished_for_process)
        return result

    def _run(self) -> StepResult:
        try:
            opened = self._open()
        except EffectBusy as exc:
            return self._effect_busy(exc)
        if isinstance(opened, Busy):
            return StepResult(self.session_id, "busy", retry_after_ms=opened.retry_after_ms)
        if opened.work == "idle":
            return StepResult(self.session_id, "idle", head_revision=opened.record.head_revision)
        lease = opened.lease
        released = False
        started = time.monotonic()
        core = self.core
        try:
            with LeaseKeeper(
                self.store.leases,
                self.store.turns,
                lease,
                core.lease.ttl_ms,
                core.lease.renew_ms,
                core.effects,
                max_hold_ms=core.step_time_limit_ms,
                control=self.control,
                poll_ms=core.interrupt_poll_ms,
            ) as keeper:
                try:
                    while True:
                        keep = (
                            self.steps + 1 < core.steps_per_delivery
                            and time.monotonic() - started < DELIVERY_BUDGET_S
                            and not self.control.interrupt.fired
                        )
                        result, released = self._step(opened, lease, keeper, keep)
                        if released:
                            return result
                        again = self._open()
                        if isinstance(again, Busy) or again.work == "idle":
                            released = True  # an idle open releases the lease itself
                            return replace(result, more_work=isinstance(again, Busy))
                        opened = again
                except TurnCommitConflict as exc:
                    # The store answers a final commit from the turn stamp before it checks
                    # the fence, so a stale step whose turn another worker finished meets the
                    # stamp. Only a step that still holds its lease has a conflict to report.
                    if not keeper.lost.is_set() and self._still_holds(lease):
                        raise
                    raise LeaseLost(
                        f"step on session {self.session_id!r} is stale: {exc.message}",
                        session_id=self.session_id,
                    ) from exc
        except EffectError as exc:
            if isinstance(exc, (EffectBusy, ReplayMismatch)):
                if isinstance(exc, EffectBusy):
                    self._forgive()
                    return self._effect_busy(exc)
                raise
            # The journal refused to record an outcome: the effect's lease expired or was
            # taken over, so another step owns this work now. Like a lost lease.
            return self._discarded(
                LeaseLost(
                    f"step on session {self.session_id!r} lost its effect lease: {exc.message}",
                    session_id=self.session_id,
                ),
                lease,
            )
        except (LeaseLost, StaleClaim) as exc:
            return self._discarded(exc, lease)
        except HeadRevisionConflict as exc:
            core.cache.forget(self.session_id)
            self._forgive()
            return StepResult(
                self.session_id, "conflict", more_work=True, steps=self.steps, detail=exc.to_dict()
            )
        except Exception as exc:
            # Retried (by Celery or the sweeper) until the step's attempts run out; the stopped
            # outcome then names this error.
            self._record_failure(lease, exc)
            raise
        finally:
            if not released:
                self._release_quietly(lease)

    # ── opening ──────────────────────────────────────────────────────────────────────────

    def _open(self) -> OpenedStep | Busy:
        core = self.core
        self.planned = None
        request = OpenRequest(
            session_id=self.session_id,
            owner_id=core.owner_id,
            incarnation_id=core.incarnation_id,
            ttl_ms=core.lease.ttl_ms,
            cached_revision=core.cache.revision(self.session_id),
            default_policy=core.default_policy(),
            effects=core.effects.holder,
        )
        opened = self.store.steps.open(request, self._plan)
        if isinstance(opened, OpenedStep) and opened.work == "turn" and self.planned is None:
            self._plan(opened)  # no journal: the store had no entry to prepare
        return opened

    def _plan(self, opened: OpenedStep) -> EffectSlot | None:
        """Inside the open transaction: build the runtime and open the protocol's step; name
        the step's first effect so its journal entry lands in the same transaction."""
        core = self.core
        turn = opened.turn
        assert turn is not None
        runtime = build_runtime(core, self._loaded(opened), "rebuild")
        policy = runtime.policy
        context = StepContext(
            session_id=runtime.session_id,
            model=policy.model.id,
            max_turns=policy.max_turns,
            provider=policy.provider,
            system_prompt=policy.system_prompt,
            tools=tuple(runtime.tools.manifests()),
            budget=core.budget,
            max_attempts=core.step_max_attempts,
            last_chance=self.final_attempt,
        )
        steer = tuple(
            SteerInput(
                i.input_id,
                opening_for_inputs([i.input])[0],
                ReplyRoute.of_input(i.input_id, i.input),
            )
            for i in opened.steer
        )
        event = StepOpened(
            turn=turn,
            graph=runtime.graph,
            context=context,
            now=datetime.now(UTC).isoformat(),
            steer=steer,
            branch_error=opened.branch_missing,
            llm_unavailable=runtime.llm.reason if isinstance(runtime.llm, Unavailable) else None,
            wakes=tuple(boundary_work(b.batch_id, b.payloads) for b in opened.wakes),
        )
        step, effects = advance(None, event)
        self.planned = _Opened(runtime, step, effects, step)
        first = effects[0]
        if isinstance(first, CallLlm):
            return EffectRequest(
                runtime.session_id, turn.turn_id, first.replay_key, first.envelope
            ).slot()
        return None

    def _loaded(self, opened: OpenedStep) -> LoadedSession:
        record = opened.record
        graph = opened.graph
        if graph is None:
            graph = self.core.cache.get(self.session_id, record.head_revision)
        if graph is None:  # evicted meanwhile: read it again (outside the open, rarely)
            graph = self.store.sessions.load(self.session_id, ActivePath()).graph
        return LoadedSession(record, graph, opened.turn, ActivePath())

    # ── one step ─────────────────────────────────────────────────────────────────────────

    def _step(
        self, opened: OpenedStep, lease: Lease, keeper: LeaseKeeper, keep: bool
    ) -> tuple[StepResult, bool]:
        self.steps += 1
        self.parent_process_id = opened.record.parent_process_id
        if opened.work == "command":
            return self._command(opened, lease, keeper, keep)
        planned = self.planned
        assert planned is not None and opened.turn is not None
        turn = opened.turn
        self.control.begin_turn_step(turn.turn_id, turn.step_index)
        log_context.bind_step(turn.turn_id, turn.step_index)
        events = self.core.events.for_step(self.session_id, turn.turn_id, turn.step_index)
        if opened.new_turn:
            events.turn_started(turn.input_ids)
            self.core.tracer.emit(
                "turn_started", self.session_id, turn.turn_id, inputs=list(turn.input_ids)
            )
        if opened.accepted_now:
            events.input_accepted(opened.accepted_now)
        self.core.tracer.emit(
            "turn_step_started", self.session_id, turn.turn_id, step=turn.step_index
        )
        work = TurnEffects(
            planned.runtime, lease, turn.turn_id, turn.step_index, self.control, events
        )
        try:
            plan = self._drive(planned, opened, work)
            keeper.check()
            closed = self._close(planned.runtime, lease, plan, work, events, keep)
        except LashError as exc:
            if not _is_terminal(exc):
                events.discarded(exc.code)
                events.close()
                raise
            log.warning(
                "turn %s of %s ends on a terminal error: %s",
                turn.turn_id,
                self.session_id,
                exc.code,
            )
            closed, plan = self._stop(planned, lease, keeper, work, events, exc, keep)
        events.close()
        return self._result(plan, closed), not closed.lease_kept

    def _drive(self, planned: _Opened, opened: OpenedStep, work: TurnEffects) -> StepPlan:
        """Perform effects until the protocol closes the step; returns its plan."""
        step, effects = planned.step, planned.effects
        if opened.mismatch is not None:
            step, effects = advance(step, StepFailed(opened.mismatch))
        decision = opened.first_effect
        while True:
            effect = effects[0]
            if isinstance(effect, CloseStep):
                return effect.plan
            if isinstance(effect, RetryLater):
                assert work.transient is not None
                raise work.transient
            if isinstance(effect, CallLlm):
                event: Any = work.call_llm(effect, decision)
            elif isinstance(effect, RunTools):
                event = work.run_tools(effect)
            else:  # pragma: no cover - the protocol has no other effect
                raise TypeError(f"unknown effect {effect!r}")
            step, effects = advance(step, event)

    def _close(
        self,
        runtime: SessionRuntime,
        lease: Lease,
        plan: StepPlan,
        work: TurnEffects,
        events: StepEvents,
        keep: bool,
    ) -> ClosedStep:
        nodes = place(runtime.graph, plan.nodes)
        outcome = plan.outcome.to_json() if plan.outcome is not None else None
        draft = commit_draft(
            runtime,
            lease.fence,
            plan,
            nodes,
            events.commit_events(runtime.head_revision + 1, outcome, plan.turn.input_ids),
        )
        try:
            closed = self.store.steps.close(CloseRequest(draft, tuple(work.held), keep_lease=keep))
        except Exception:
            # The held outcomes are true whatever became of the commit: keep them, so the
            # retried step replays its LLM answer and tool results instead of paying again.
            self._record_held(work)
            raise
        events.committed()
        if closed.replies:
            self.core.replies.send(closed.replies)
        self._committed(runtime, nodes, closed, plan)
        return closed

    def _stop(
        self,
        planned: _Opened,
        lease: Lease,
        keeper: LeaseKeeper,
        work: TurnEffects,
        events: StepEvents,
        error: LashError,
        keep: bool,
    ) -> tuple[ClosedStep, StepPlan]:
        """End the turn on a terminal error with a recorded `stopped(runtime_error)`. If even
        that commit is refused for good (its nodes cannot be written), end it with no graph
        change: the cause that failed the turn must not also hold the session for ever."""
        work.held.clear()
        _, effects = advance(planned.opened_step, StepFailed(error.to_dict()))
        plan = _plan_of(effects)
        keeper.check()
        try:
            return self._close(planned.runtime, lease, plan, work, events, keep), plan
        except LashError as refused:
            if not _is_terminal(refused):
                raise
            log.warning(
                "turn %s of %s ends without a graph record: %s",
                plan.turn.turn_id,
                self.session_id,
                refused.code,
            )
            failed = StepFailed(error.to_dict(), record_refused=refused.to_dict())
            plan = _plan_of(advance(planned.opened_step, failed)[1])
            return self._close(planned.runtime, lease, plan, work, events, keep), plan

    def _committed(
        self, runtime: SessionRuntime, nodes: tuple[Node, ...], closed: ClosedStep, plan: StepPlan
    ) -> None:
        core = self.core
        revision = closed.result.head_revision
        if runtime.graph_replace_required or closed.result.replayed:
            core.cache.forget(self.session_id)
        elif runtime.policy.residency == "active_path_only":
            adopt(runtime.graph, nodes)
            core.cache.put(self.session_id, revision, runtime.graph)
        core.tracer.emit(
            "turn_completed" if plan.next_turn is None else "turn_step_committed",
            self.session_id,
            plan.turn.turn_id,
            head_revision=revision,
            usage=plan.usage.to_json(),
            outcome=None if plan.outcome is None else plan.outcome.to_json(),
        )

    def _command(
        self, opened: OpenedStep, lease: Lease, keeper: LeaseKeeper, keep: bool
    ) -> tuple[StepResult, bool]:
        assert opened.command is not None
        runtime = build_runtime(self.core, self._loaded(opened), "rebuild")
        draft = command_draft(runtime, lease.fence, opened.command)
        keeper.check()
        closed = self.store.steps.close(CloseRequest(draft, keep_lease=keep))
        self.core.cache.forget(self.session_id)
        result = StepResult(
            self.session_id,
            "command",
            more_work=closed.more_work,
            head_revision=closed.result.head_revision,
            steps=self.steps,
        )
        return result, not closed.lease_kept

    def _result(self, plan: StepPlan, closed: ClosedStep) -> StepResult:
        revision = closed.result.head_revision
        if plan.next_turn is not None:
            return StepResult(
                self.session_id,
                "progressed",
                more_work=True,
                turn_id=plan.turn.turn_id,
                head_revision=revision,
                steps=self.steps,
            )
        outcome = plan.outcome.to_json() if plan.outcome is not None else None
        self.finished_for_process = self.finished_for_process or self.parent_process_id
        return StepResult(
            self.session_id,
            "finished",
            more_work=closed.more_work,
            turn_id=plan.turn.turn_id,
            head_revision=revision,
            outcome=outcome,
            steps=self.steps,
        )

    # ── when a step cannot commit ────────────────────────────────────────────────────────

    def _record_held(self, work: TurnEffects) -> None:
        for outcome in work.held:
            try:
                self.core.effects.record(outcome)
            except Exception as exc:  # lost with the commit: the effect runs again
                log.warning("could not record effect %s: %s", outcome.replay_key, exc)
        work.held.clear()

    def _discarded(self, exc: LashError, lease: Lease) -> StepResult:
        self.core.cache.forget(self.session_id)
        log.info("step on %s discarded: %s", self.session_id, exc.code)
        if self.control.timed_out:
            pass  # the keeper recorded the step's own failure: it ran past its time limit
        elif isinstance(exc, LeaseLost):
            self._forgive()  # another worker has the session now
        else:
            self._record_failure(lease, exc)
        return StepResult(
            self.session_id, "lease_lost", more_work=True, steps=self.steps, detail=exc.to_dict()
        )

    def _effect_busy(self, exc: EffectBusy) -> StepResult:
        retry = int(exc.details.get("retry_after_ms") or self.core.lease.ttl_ms)
        return StepResult(
            self.session_id, "effect_busy", more_work=True, retry_after_ms=retry, steps=self.steps
        )

    def _record_failure(self, lease: Lease, exc: Exception) -> None:
        """Note why the turn's step failed, for the stopped outcome once its attempts run
        out."""
        turn_id = self.control.turn_id
        if turn_id is None:
            return
        if isinstance(exc, LashError):
            error = {"code": exc.code, "message": exc.message}
        else:
            error = {"code": "unexpected_error", "message": f"{type(exc).__name__}: {exc}"}
        try:
            self.store.turns.record_step_failure(lease.fence, turn_id, error)
        except Exception as record_exc:  # the failure itself is what the caller must see
            log.warning("could not record the failed step on %s: %s", self.session_id, record_exc)

    def _forgive(self) -> None:
        """Take back the attempt of a step that only met another worker in its way."""
        control = self.control
        if control.turn_id is None or control.step_index is None:
            return
        try:
            self.store.turns.forgive_step_attempt(
                self.session_id, control.turn_id, control.step_index
            )
        except Exception as exc:  # at worst the turn runs out of attempts one step sooner
            log.warning("could not take back a step attempt: %s", exc)

    def _still_holds(self, lease: Lease) -> bool:
        try:
            self.store.leases.renew(lease.fence, self.core.lease.ttl_ms)
        except LeaseLost:
            return False
        return True

    def _release_quietly(self, lease: Lease) -> None:
        try:
            self.store.leases.release(lease.fence)
        except LashError as exc:  # the lease expires by itself; never mask the step's result
            log.warning("could not release lease on %s: %s", lease.session_id, exc.code)


def _plan_of(effects: tuple[Effect, ...]) -> StepPlan:
    (effect,) = effects
    assert isinstance(effect, CloseStep)
    return effect.plan


def _is_terminal(exc: LashError) -> bool:
    """Errors that no re-run can fix: the turn ends with a recorded `stopped` outcome
    instead of the step failing, and being re-poked, forever."""
    if isinstance(exc, ReplayMismatch):
        return True
    return not (exc.retryable or isinstance(exc, (LeaseError, ConflictError, EffectError)))
