"""Celery tasks: thin views over the runtime. Ids in, call the runtime, map errors, done."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from sqlalchemy.exc import SQLAlchemyError

from lash_tasks.errors import LashError, MessageRejected, NotFound, ValidationError
from lash_tasks.ingress import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    operations,
    parse_payload,
)
from lash_tasks.machine.ids import check_session_id
from lash_tasks.machine.processes import check_process_id
from lash_tasks.runtime.process_runner import run_process
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.worker.app import app, lash_task
from lash_tasks.worker.maintenance import JOBS, run_job
from lash_tasks.worker.pokes import (
    clear_poke_mark,
    poke_process,
    poke_session,
    repoke_later,
    repoke_process_later,
    retry_delay_s,
)
from lash_tasks.worker.resources import process_resources

log = logging.getLogger(__name__)
MAX_TRANSIENT_RETRIES = 8


# Celery logs these without a traceback ("raised expected") and still records FAILURE.
REJECTION = (MessageRejected,)


def _rejected(what: str, exc: LashError) -> MessageRejected:
    """A message no retry can fix: the task FAILS (visible as such in Flower), never retried."""
    log.error("rejected %s: %s", what, exc.message)
    return MessageRejected.because(what, exc)


@lash_task("lash.session.step", bind=True, max_retries=MAX_TRANSIENT_RETRIES, throws=REJECTION)
def session_step(self: Task, session_id: Any) -> dict[str, Any]:
    res = None
    try:
        check_session_id(session_id)
        res = process_resources.get()
        clear_poke_mark(res.redis, session_id)
        final = self.request.retries >= MAX_TRANSIENT_RETRIES
        result = run_step(res.core, session_id, final_attempt=final)
    except (ValidationError, NotFound) as exc:
        raise _rejected(f"lash.session.step({session_id!r})", exc) from exc
    except LashError as exc:
        if not exc.retryable:
            raise
        wait = max(retry_delay_s(self.request.retries), getattr(exc, "retry_after", None) or 0)
        if res is not None:
            res.metrics.retried(exc.code)
        log.warning("step on %s will retry in %.1fs: %s", session_id, wait, exc.code)
        raise self.retry(exc=exc, countdown=wait) from None
    except (SQLAlchemyError, OSError) as exc:
        # A database or network fault outside a store transaction: transient, like above.
        log.warning("step on %s will retry: %s", session_id, type(exc).__name__)
        if res is not None:
            res.metrics.retried(type(exc).__name__)
        raise self.retry(exc=exc, countdown=retry_delay_s(self.request.retries)) from None
    res.metrics.delivered(result.status, result.steps)
    if result.status in ("busy", "effect_busy"):
        delay = result.retry_after_ms
        repoke_later(
            app, res.redis, session_id, res.settings.lease_ttl_ms if delay is None else delay
        )
    elif result.more_work:
        poke_session(app, session_id, res.redis)
    if result.finished_for_process is not None:
        # A subagent's child session: its answer completes the process that waits for it.
        poke_process(app, result.finished_for_process, res.redis)
    return result.to_dict()


@lash_task("lash.process.run", bind=True, max_retries=MAX_TRANSIENT_RETRIES, throws=REJECTION)
def process_run(self: Task, process_id: Any) -> dict[str, Any]:
    try:
        check_process_id(process_id)
        res = process_resources.get()
        result = run_process(res.core, process_id)
    except ValidationError as exc:
        raise _rejected(f"lash.process.run({process_id!r})", exc) from exc
    except LashError as exc:
        if not exc.retryable:
            raise
        log.warning("process %s will retry: %s", process_id, exc.code)
        raise self.retry(exc=exc, countdown=retry_delay_s(self.request.retries)) from None
    if result.status == "busy":
        delay = result.retry_after_ms or res.settings.lease_ttl_ms
        repoke_process_later(app, res.redis, process_id, delay)
    for session_id in result.poke_sessions:
        poke_session(app, session_id, res.redis)
    return result.to_dict()


@lash_task("lash.ingress.create_session", throws=REJECTION)
def create_session(payload: Any) -> dict[str, Any]:
    try:
        parsed = parse_payload(CreateSessionPayload, payload)
        res = process_resources.get()
        record = operations.create_session(res.store, parsed, res.settings)
    except LashError as exc:
        if exc.retryable:
            raise
        raise _rejected("lash.ingress.create_session", exc) from exc
    return {
        "status": "created",
        "session_id": record.session_id,
        "head_revision": record.head_revision,
    }


@lash_task("lash.ingress.enqueue_turn", bind=True, throws=REJECTION)
def enqueue_turn(self: Task, payload: Any) -> dict[str, Any]:
    try:
        if isinstance(payload, dict) and not (payload.get("source_key") or payload.get("input_id")):
            # A redelivered message (worker lost before its ack) must not enqueue twice:
            # the message id is the submission's identity.
            payload = {**payload, "source_key": f"task:{self.request.id}"}
        parsed = parse_payload(EnqueueTurnPayload, payload)
        res = process_resources.get()
        row = operations.enqueue_turn(res.store, parsed)
    except LashError as exc:
        if exc.retryable:
            raise
        raise _rejected("lash.ingress.enqueue_turn", exc) from exc
    poke_session(app, parsed.session_id, res.redis)
    return {"status": "enqueued", "input_id": row.input_id, "state": row.state}


@lash_task("lash.ingress.cancel_input", throws=REJECTION)
def cancel_input(payload: Any) -> dict[str, Any]:
    try:
        parsed = parse_payload(CancelInputPayload, payload)
        res = process_resources.get()
        outcome = operations.cancel_input(res.store, parsed, res.events.publisher)
        return {"status": "ok", **outcome.model_dump(mode="json")}
    except LashError as exc:
        if exc.retryable:
            raise
        raise _rejected("lash.ingress.cancel_input", exc) from exc


def _maintenance_task(job: str) -> Any:
    @lash_task(f"lash.maintenance.{job}", bind=True)
    def run(self: Task, slot: str | None = None) -> dict[str, Any]:
        res = process_resources.get()
        report = run_job(res, app, job, slot)
        log.info("maintenance %s: %s", job, report)
        return report

    return run


maintenance_tasks = {job: _maintenance_task(job) for job in JOBS}
