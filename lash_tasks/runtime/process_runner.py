"""`run_process`: one delivery of a process poke (`lash.process.run`, DESIGN §6).

Take the process lease; decide by the process's disposition what recovery means
(`machine.processes.recovery_decision`); run its work; complete it with the lease in one
transaction. A process's work is one of its kinds:

- `tool`: a background tool call, run here under the tool surface it was called with (the
  process's environment); oversized output goes to the attachment facade with the process
  as owner, and the completion stamps it.
- `subagent`: a turn in a child session. The child session and its task input are created
  idempotently (its own rows; it runs on the fleet like any session); the process completes
  once the child's turn has a result, and until then its lease is released — the child's
  final step pokes the process again.

The caller publishes what the result asks for: the sessions to poke (a child to start, a
woken session), and a delayed re-poke when the lease was busy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lash_tasks.errors import LashError, LeaseLost, NotFound
from lash_tasks.machine import ToolCall, parse_policy
from lash_tasks.machine.processes import (
    check_process_id,
    child_session_id,
    recovery_decision,
)
from lash_tasks.runtime.background_tools import TOOL_SURFACE
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.store.process_records import Completion, ProcessLease, ProcessRecord
from lash_tasks.store.records import InputDraft, InputState
from lash_tasks.tools.contract import ToolContext

log = logging.getLogger(__name__)

RunStatus = Literal[
    "unknown", "busy", "done", "external", "waiting", "completed", "abandoned", "started_child"
]
SUMMARY_CHARS = 4000
CHILD_INPUT_ID = "task"


@dataclass(frozen=True)
class ProcessRunResult:
    process_id: str
    status: RunStatus
    retry_after_ms: int | None = None
    poke_sessions: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "status": self.status,
            "retry_after_ms": self.retry_after_ms,
            "poke_sessions": list(self.poke_sessions),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class WorkDone:
    """What a process's work came to: its terminal status, result and model-facing summary."""

    status: Literal["completed", "failed"]
    result: dict[str, Any]
    summary: str


# A kind's work: None while it waits on something outside (a child session's turn).
Work = Callable[[LashCore, ProcessRecord, list[str]], WorkDone | None]


def run_process(core: LashCore, process_id: str) -> ProcessRunResult:
    """Run or recover the process. An unknown process id is a logged no-op."""
    check_process_id(process_id)
    store = core.require_store()
    if store.processes.get(process_id) is None:
        log.info("poke for unknown process %s: nothing to do", process_id)
        return ProcessRunResult(process_id, "unknown")
    taken = store.processes.try_claim(
        process_id, core.owner_id, core.incarnation_id, core.lease.ttl_ms
    )
    if not isinstance(taken, ProcessLease):
        return ProcessRunResult(process_id, "busy", retry_after_ms=taken.retry_after_ms)
    lease = taken
    record = lease.record
    decision = recovery_decision(
        record.disposition, record.status, record.first_started_at is not None, lease.found
    )
    try:
        if decision in ("done", "external", "wait", "busy"):
            store.processes.release(lease.fence)
            status: RunStatus = "done" if decision == "done" else "waiting"
            if decision == "external":
                status = "external"
            return ProcessRunResult(process_id, status, detail={"decision": decision})
        if decision == "abandon":
            return _abandon(core, lease)
        if decision == "start":
            store.processes.mark_started(lease.fence)
        pokes: list[str] = []
        with _Renewal(core, lease):
            done = WORK[record.kind](core, record, pokes)
        if done is None:
            store.processes.release(lease.fence)
            return ProcessRunResult(process_id, "started_child", poke_sessions=tuple(pokes))
        completion = store.processes.complete(
            lease.fence,
            process_id,
            done.status,
            done.result,
            "terminal",
            summary=done.summary[:SUMMARY_CHARS],
        )
        return _completed(completion, "completed", pokes)
    except BaseException:
        _release_quietly(core, lease)
        raise


def _abandon(core: LashCore, lease: ProcessLease) -> ProcessRunResult:
    """An owner_bound process that started under a holder now provably dead: it may have
    done part of its work, so it is not run again. The evidence says who and when."""
    record = lease.record
    evidence = {
        "reason": "owner_bound process found started with a dead holder",
        "first_started_at": record.first_started_at,
        "dead_owner_id": lease.previous_owner,
        "dead_incarnation_id": lease.previous_incarnation_id,
        "found_by": core.owner_id,
    }
    completion = core.require_store().processes.complete(
        lease.fence,
        record.process_id,
        "abandoned",
        {"evidence": evidence},
        "terminal",
        summary="abandoned: its worker died after it started; it was not run again",
    )
    return _completed(completion, "abandoned", [])


def _completed(completion: Completion, status: RunStatus, pokes: list[str]) -> ProcessRunResult:
    woken = (completion.wake_session_id,) if completion.wake_session_id else ()
    return ProcessRunResult(
        completion.record.process_id,
        status,
        poke_sessions=(*pokes, *woken),
        detail={"replayed": completion.replayed, "event_seq": completion.event.seq},
    )


# ── kinds ─────────────────────────────────────────────────────────────────────────────────


def _tool_work(core: LashCore, record: ProcessRecord, pokes: list[str]) -> WorkDone:
    spec = record.input
    call = ToolCall(
        str(spec.get("call_id") or record.process_id), str(spec["tool"]), spec["arguments"]
    )
    attachments = None
    store = core.require_store()
    tools = core.tools_factory()
    session_id = record.session_id
    if session_id is not None:
        from lash_tasks.attachments import attachments_for

        if core.blobs is not None:
            attachments = attachments_for(
                store.manifest, core.blobs, session_id, "process", record.process_id
            )
        if spec.get("env"):
            try:
                env = core.process_envs.get_env(session_id, str(spec["env"]))
            except NotFound as exc:
                return WorkDone("failed", {"error": exc.to_dict()}, f"not run: {exc.message}")
            # The run offers the tools the model could call when it started the process.
            tools.restore(env[TOOL_SURFACE])
    context = ToolContext(
        session_id or "", f"process:{record.process_id}", call.call_id, attachments
    )
    result = tools.execute(call, context)
    text, attached = result.text, result.attachments
    if attachments is not None and not core.budget.fits(text):
        # The whole output goes to the session's attachments, owned by the process (its
        # completion stamps it); the result and the wake carry the budgeted view.
        attachment_id = attachments.put(text.encode(), "text/plain")
        text = core.budget.apply(text, attachment_id=attachment_id).model_text
        attached = (*attached, attachment_id)
    return WorkDone(
        "failed" if result.is_error else "completed",
        {"text": text, "attachments": list(attached)},
        text,
    )


def _subagent_work(core: LashCore, record: ProcessRecord, pokes: list[str]) -> WorkDone | None:
    store = core.require_store()
    spec = record.input
    child = child_session_id(record.process_id)
    if not store.sessions.exists(child):
        policy = parse_policy(spec["policy"]) if spec.get("policy") else core.default_policy()
        store.sessions.create(
            child,
            policy,
            parent_session_id=record.session_id or spec.get("parent_session_id"),
            parent_process_id=record.process_id,
        )
    row = store.inputs.get(child, CHILD_INPUT_ID)
    if row is None:
        row = store.inputs.enqueue(
            InputDraft(
                child,
                f"process:{record.process_id}:task",
                {"text": str(spec["task"])},
                input_id=CHILD_INPUT_ID,
            )
        )
    if row.state == InputState.COMPLETED and row.turn_id is not None:
        result = store.turns.result(child, row.turn_id)
        if result is not None:
            outcome = result.get("outcome") or {}
            finished = outcome.get("status") == "finished"
            text = str(outcome.get("text", ""))
            return WorkDone(
                "completed" if finished else "failed",
                {"child_session_id": child, "turn_id": row.turn_id, "outcome": outcome},
                text if finished else f"subagent stopped ({outcome.get('reason')}): {text}",
            )
    if row.state == InputState.CANCELLED:
        return WorkDone("failed", {"child_session_id": child}, "subagent task was cancelled")
    pokes.append(child)
    return None


WORK: dict[str, Work] = {"tool": _tool_work, "subagent": _subagent_work}


class _Renewal:
    """Keeps the process lease alive while its work runs (every renew interval)."""

    def __init__(self, core: LashCore, lease: ProcessLease) -> None:
        self.core, self.lease = core, lease
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="lash-process-lease")

    def __enter__(self) -> _Renewal:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        processes = self.core.require_store().processes
        while not self.stop.wait(self.core.lease.renew_ms / 1000):
            try:
                processes.renew(self.lease.fence, self.core.lease.ttl_ms)
            except LeaseLost:
                log.warning("process %s lost its lease while running", self.lease.process_id)
                return
            except LashError as exc:  # transient: the next renewal may succeed
                log.warning("could not renew process lease: %s", exc.code)


def _release_quietly(core: LashCore, lease: ProcessLease) -> None:
    try:
        core.require_store().processes.release(lease.fence)
    except LashError as exc:
        log.warning("could not release process lease %s: %s", lease.process_id, exc.code)
