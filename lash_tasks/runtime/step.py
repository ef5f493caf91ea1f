"""`run_step`: one fenced turn step (DESIGN §4.1), in-process.

lease → rebuild → resume the active turn or claim work → one protocol iteration
through the effect host → one fenced commit (progress or final) → release.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
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
    StepAttemptsExhausted,
    TurnCommitConflict,
)
from lash_tasks.machine import CommitResult
from lash_tasks.machine.ids import check_session_id
from lash_tasks.runtime.assembly import SessionRuntime, assemble_runtime
from lash_tasks.runtime.commands import run_session_command
from lash_tasks.runtime.iteration import (
    Iteration,
    run_iteration,
    stopped_iteration,
    unrecorded_stop,
)
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.lease_keeper import LeaseKeeper
from lash_tasks.runtime.step_control import StepControl
from lash_tasks.runtime.turn_commit import commit_step
from lash_tasks.runtime.turn_start import StepWork, resume_or_claim
from lash_tasks.store.records import Busy, Lease

log = logging.getLogger(__name__)

StepStatus = Literal[
    "busy", "idle", "command", "progressed", "finished", "lease_lost", "conflict", "effect_busy"
]


@dataclass(frozen=True)
class StepResult:
    """What one step did. `more_work` asks the caller to poke the session again."""

    session_id: str
    status: StepStatus
    more_work: bool = False
    retry_after_ms: int | None = None
    turn_id: str | None = None
    head_revision: int | None = None
    outcome: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "more_work": self.more_work,
            "retry_after_ms": self.retry_after_ms,
            "turn_id": self.turn_id,
            "head_revision": self.head_revision,
            "outcome": self.outcome,
        }


# Steps running in this process, by lease identity. The store lets the same owner and
# incarnation re-enter a lease it holds, so two threads of one worker (threads pool) would
# otherwise share a lease: run one session's step concurrently, and release the lease
# under each other's feet. A second poke for a session this process is stepping is `busy`.
_running: dict[tuple[str, str, str], StepControl] = {}
_running_lock = threading.Lock()


def run_step(core: LashCore, session_id: str, *, final_attempt: bool = True) -> StepResult:
    """Run at most one step of `session_id`. Never raises for busy or stale leases.

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
        return _run_step(core, session_id, final_attempt, control)
    finally:
        with _running_lock:
            _running.pop(key, None)


_COMMITTED = frozenset({"progressed", "finished", "command"})


def _run_step(
    core: LashCore, session_id: str, final_attempt: bool, control: StepControl
) -> StepResult:
    store = core.require_store()
    lease = store.leases.try_claim(
        session_id, core.owner_id, core.incarnation_id, core.lease.ttl_ms
    )
    if isinstance(lease, Busy):
        return StepResult(session_id, "busy", retry_after_ms=lease.retry_after_ms)
    released_by_commit = False
    try:
        with LeaseKeeper(
            store.leases,
            store.turns,
            lease,
            core.lease.ttl_ms,
            core.lease.renew_ms,
            core.effects,
            max_hold_ms=core.step_time_limit_ms,
            control=control,
            poll_ms=core.interrupt_poll_ms,
        ) as keeper:
            try:
                result = _run_leased(core, lease, keeper, final_attempt)
                # Every commit of a step releases the lease in its own transaction.
                released_by_commit = result.status in _COMMITTED
                return result
            except EffectError as exc:
                if isinstance(exc, (EffectBusy, ReplayMismatch)):
                    raise
                # The journal refused to record an outcome: the effect's lease expired or
                # was taken over, so another step owns this work now. Like a lost lease.
                raise LeaseLost(
                    f"step on session {session_id!r} lost its effect lease: {exc.message}",
                    session_id=session_id,
                ) from exc
            except TurnCommitConflict as exc:
                # The store answers a final commit from the turn stamp before it checks the
                # fence, so a stale step whose turn another worker finished meets the stamp.
                # Only a step that still holds its lease has a real conflict to report.
                if not keeper.lost.is_set() and _still_holds(core, lease):
                    raise
                raise LeaseLost(
                    f"step on session {session_id!r} is stale: {exc.message}",
                    session_id=session_id,
                ) from exc
    except (LeaseLost, StaleClaim) as exc:
        core.cache.forget(session_id)
        log.info("step on %s discarded: %s", session_id, exc.code)
        if control.timed_out:
            pass  # the keeper recorded the step's own failure: it ran past its time limit
        elif isinstance(exc, LeaseLost):
            _forgive(core, session_id, control)  # another worker has the session now
        else:
            _record_failure(core, lease, control, exc)
        return StepResult(session_id, "lease_lost", more_work=True, detail=exc.to_dict())
    except HeadRevisionConflict as exc:
        core.cache.forget(session_id)
        _forgive(core, session_id, control)
        return StepResult(session_id, "conflict", more_work=True, detail=exc.to_dict())
    except EffectBusy as exc:
        _forgive(core, session_id, control)
        retry = int(exc.details.get("retry_after_ms") or core.lease.ttl_ms)
        return StepResult(session_id, "effect_busy", more_work=True, retry_after_ms=retry)
    except Exception as exc:
        # Retried (by Celery or the sweeper) until the step's attempts run out; the stopped
        # outcome then names this error.
        _record_failure(core, lease, control, exc)
        raise
    finally:
        if not released_by_commit:
            _release_quietly(core, lease)


def _run_leased(
    core: LashCore, lease: Lease, keeper: LeaseKeeper, final_attempt: bool
) -> StepResult:
    runtime = assemble_runtime(core, lease.session_id, purpose="rebuild")
    started = resume_or_claim(core, runtime, lease.fence)
    if started is None:
        return StepResult(lease.session_id, "idle", head_revision=runtime.head_revision)
    if started.command is not None:
        revision = run_session_command(core, runtime, lease.fence, started.command, keeper)
        return StepResult(lease.session_id, "command", more_work=True, head_revision=revision)
    work: StepWork = started.work
    keeper.control.begin_turn_step(work.turn_id, work.step_index)
    try:
        if work.attempt > core.step_max_attempts:
            raise _exhausted(work)
        iteration = run_iteration(
            core,
            runtime,
            lease.fence,
            work,
            # The step's last attempt records a transient LLM failure instead of raising it.
            final_attempt=final_attempt or work.attempt >= core.step_max_attempts,
            control=keeper.control,
        )
        keeper.check()
        result = commit_step(core, runtime, lease.fence, work, iteration)
    except LashError as exc:
        if not _is_terminal(exc):
            raise
        log.warning(
            "turn %s of %s ends on a terminal error: %s", work.turn_id, lease.session_id, exc.code
        )
        runtime, iteration, result = _stop_turn(core, lease, keeper, work, exc)
    _remember(core, runtime, result.head_revision)
    if iteration.outcome is None:
        return StepResult(
            lease.session_id,
            "progressed",
            more_work=True,
            turn_id=work.turn_id,
            head_revision=result.head_revision,
        )
    store = core.require_store()
    return StepResult(
        lease.session_id,
        "finished",
        more_work=store.turns.has_waiting_work(lease.session_id),
        turn_id=work.turn_id,
        head_revision=result.head_revision,
        outcome=iteration.outcome.to_json(),
    )


def _stop_turn(
    core: LashCore, lease: Lease, keeper: LeaseKeeper, work: StepWork, error: LashError
) -> tuple[SessionRuntime, Iteration, CommitResult]:
    """End the turn on a terminal error with a recorded `stopped(runtime_error)`. If even
    that commit is refused for good (its nodes cannot be written), end it with no graph
    change: the cause that failed the turn must not also hold the session forever."""
    runtime = assemble_runtime(core, lease.session_id, purpose="rebuild")
    iteration = stopped_iteration(runtime, work, error)
    keeper.check()
    try:
        return runtime, iteration, commit_step(core, runtime, lease.fence, work, iteration)
    except LashError as refused:
        if not _is_terminal(refused):
            raise
        log.warning(
            "turn %s of %s ends without a graph record: %s",
            work.turn_id,
            lease.session_id,
            refused.code,
        )
        runtime = assemble_runtime(core, lease.session_id, purpose="rebuild")
        iteration = unrecorded_stop(error, refused)
        return runtime, iteration, commit_step(core, runtime, lease.fence, work, iteration)


def _is_terminal(exc: LashError) -> bool:
    """Errors that no re-run can fix: the turn ends with a recorded `stopped` outcome
    instead of the step failing, and being re-poked, forever."""
    if isinstance(exc, ReplayMismatch):
        return True
    return not (exc.retryable or isinstance(exc, (LeaseError, ConflictError, EffectError)))


def _exhausted(work: StepWork) -> StepAttemptsExhausted:
    failures = work.attempt - 1
    last = work.last_error
    reason = (
        f"{last.get('code')}: {last.get('message')}"
        if last
        else "the step never finished (its worker was lost)"
    )
    return StepAttemptsExhausted(
        f"step {work.step_index} failed {failures} times; last error: {reason}",
        step_index=work.step_index,
        attempts=failures,
        last_error=last,
    )


def _record_failure(core: LashCore, lease: Lease, control: StepControl, exc: Exception) -> None:
    """Note why the turn's step failed, for the stopped outcome once its attempts run out."""
    if control.turn_id is None:
        return
    if isinstance(exc, LashError):
        error = {"code": exc.code, "message": exc.message}
    else:
        error = {"code": "unexpected_error", "message": f"{type(exc).__name__}: {exc}"}
    try:
        core.require_store().turns.record_step_failure(lease.fence, control.turn_id, error)
    except Exception as record_exc:  # the failure itself is what the caller must see
        log.warning("could not record the failed step on %s: %s", lease.session_id, record_exc)


def _forgive(core: LashCore, session_id: str, control: StepControl) -> None:
    """Take back the attempt of a step that only met another worker in its way."""
    if control.turn_id is None or control.step_index is None:
        return
    try:
        store = core.require_store()
        store.turns.forgive_step_attempt(session_id, control.turn_id, control.step_index)
    except Exception as exc:  # at worst the turn runs out of attempts one step sooner
        log.warning("could not take back a step attempt: %s", exc)


def _remember(core: LashCore, runtime: SessionRuntime, head_revision: int) -> None:
    if runtime.policy.residency == "active_path_only":
        core.cache.put(runtime.session_id, head_revision, runtime.graph)


def _still_holds(core: LashCore, lease: Lease) -> bool:
    try:
        core.require_store().leases.renew(lease.fence, core.lease.ttl_ms)
    except LeaseLost:
        return False
    return True


def _release_quietly(core: LashCore, lease: Lease) -> None:
    try:
        core.require_store().leases.release(lease.fence)
    except LashError as exc:  # the lease expires by itself; never mask the step's result
        log.warning("could not release lease on %s: %s", lease.session_id, exc.code)
