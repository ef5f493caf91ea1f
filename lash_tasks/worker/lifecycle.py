"""A worker process's life: validate the wiring and register its liveness before any task
runs, refuse to start with one clear line when something is wrong, retire at shutdown.

Checked at start: LASH_* variables, the LLM provider and its key, LASH_TOOLS imports,
the attachment store and its durability tier against the database's, the database schema
revision, and that no live process already runs under this worker's name. A worker that
started "ready" with a broken wiring would fail every turn while callers saw "pending".
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from billiard.process import current_process  # type: ignore[import-untyped]
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from sqlalchemy.exc import SQLAlchemyError

from lash_tasks.errors import LashError
from lash_tasks.log_format import use_json_logs
from lash_tasks.metrics.exporter import MetricsExporter
from lash_tasks.settings import Settings
from lash_tasks.store.database import explain_database_error
from lash_tasks.worker.app import app, on_signal
from lash_tasks.worker.pokes import poke_session
from lash_tasks.worker.process_identity import owner_id_for
from lash_tasks.worker.resources import Resources, process_resources

log = logging.getLogger(__name__)
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: a supervisor should not just restart in a loop
# How often a threads-pool worker's event loop is woken (see `_on_worker_ready`).
EVENT_LOOP_WAKE_S = 0.005


@on_signal(after_setup_logger)
@on_signal(after_setup_task_logger)
def _on_setup_logger(logger: logging.Logger, **_: Any) -> None:
    """LASH_LOG_FORMAT=json: Celery's handlers write JSON lines (ours and Celery's records)."""
    if Settings.from_env().log_format == "json":
        use_json_logs(logger)


@on_signal(worker_init)
def _on_worker_init(sender: Any, **_: Any) -> None:
    """The main process, before it consumes anything (and before a prefork pool forks)."""
    try:
        res = process_resources.start_worker(owner_id_for(sender.hostname), _poke_orphans)
        settings = res.settings
        if settings.metrics_port is not None:
            exporter = MetricsExporter(
                res.metrics.registry, settings.env, settings.metrics_host, settings.metrics_port
            )
            res.exporter = exporter.start()  # stopped with the resources at shutdown
    except LashError as exc:
        _refuse_to_start(exc.message)
    except SQLAlchemyError as exc:
        explained = explain_database_error(exc)
        _refuse_to_start(explained.message if isinstance(explained, LashError) else str(exc))
    except Exception as exc:
        # Not a wiring error we know: keep the traceback, but never start half-wired
        # (Celery would log the exception and carry on without a heartbeat).
        traceback.print_exc()
        _refuse_to_start(f"start-up failed: {type(exc).__name__}: {exc}")


@on_signal(worker_ready)
def _on_worker_ready(sender: Any, **_: Any) -> None:
    """Threads pool: wake the consumer's event loop every few milliseconds.

    A task thread acknowledges its message (late ack) from outside the event loop, and the
    loop only asks the broker for the next message when it next wakes, which with nothing
    else to do is after a second or more (celery#6941). At full concurrency every finished
    step then waited that long for its successor: a fleet of 500 ms LLM calls ran at a
    quarter of its capacity. A timer with nothing to do bounds the wait.
    """
    pool = getattr(sender, "pool", None)
    timer = getattr(sender, "timer", None)
    if timer is None or type(pool).__module__ != "celery.concurrency.thread":
        return
    timer.call_repeatedly(EVENT_LOOP_WAKE_S, _wake)


def _wake() -> None:
    """The event loop's reason to wake; its own cycle then fetches what the pool can take."""


@on_signal(worker_process_init)
def _on_pool_child_init(sender: Any, **_: Any) -> None:
    """A prefork child: its own connections, and its own identity (the pool slot), so that
    the child replacing a killed one takes over its leases at once."""
    process_resources.reset_after_fork()
    slot = getattr(current_process(), "index", None)
    try:
        process_resources.start_worker(
            owner_id_for(str(sender), slot), _poke_orphans, check_schema=False
        )
    except (LashError, SQLAlchemyError) as exc:
        # The main process validated the wiring; this is a passing fault (the database).
        # Steps still run, built on first use, with lease ttl recovery only.
        log.error("pool child %s started without a liveness heartbeat: %s", slot, exc)


@on_signal(worker_shutdown)  # threads and solo pools: the main process did the work
@on_signal(worker_process_shutdown)  # prefork: each child
def _on_shutdown(**_: Any) -> None:
    process_resources.shutdown()


def _poke_orphans(res: Resources, session_ids: Sequence[str]) -> None:
    res.metrics.took_over(len(session_ids))
    for session_id in session_ids:
        # Forced: a coalescing mark may belong to a message the dead worker had taken.
        poke_session(app, session_id, res.redis, force=True)


def _refuse_to_start(reason: str) -> NoReturn:
    print(f"lash-tasks worker: {reason}", file=sys.stderr, flush=True)
    # Celery's signal dispatch swallows exceptions, but lets SystemExit end the process.
    raise SystemExit(EXIT_CONFIG)
