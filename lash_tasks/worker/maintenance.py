"""Maintenance jobs run by beat. Each runs once per (job, scheduled slot)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from lash_tasks.attachments.gc import reclaim_unreferenced_attachments
from lash_tasks.errors import SessionNotFound
from lash_tasks.settings import Settings
from lash_tasks.worker.beat_schedule import job_intervals_s
from lash_tasks.worker.pokes import poke_process, poke_session
from lash_tasks.worker.replies import republish_unsent
from lash_tasks.worker.resources import Resources

log = logging.getLogger(__name__)
JOBS = ("sweep", "tombstone_orphans", "vacuum", "reclaim_attachments", "prune_processes")
ORPHAN_PAGE_SIZE = 500


def current_slot(job: str, now_s: float, settings: Settings) -> str:
    """The schedule slot a beat firing belongs to: two beats in one interval share it."""
    interval = job_intervals_s(settings)[job]
    return f"{int(now_s // interval) * interval}"


def run_job(res: Resources, app: Any, job: str, slot: str | None = None) -> dict[str, Any]:
    """Run `job` for `slot` (default: the current schedule slot) unless it already ran."""
    if job not in JOBS:
        raise ValueError(f"unknown maintenance job {job!r}; known: {', '.join(JOBS)}")
    # The database clock, not this worker's: workers with skewed clocks must agree on
    # the slot, or two beats' firings would both run.
    slot = slot or current_slot(job, res.store.database.db_now_ms() / 1000, res.settings)
    if not res.store.maintenance.claim_slot(job, slot):
        return {"job": job, "slot": slot, "skipped": "slot already ran"}
    report: dict[str, Any] = {"job": job, "slot": slot, **_JOBS[job](res, app, slot)}
    res.store.maintenance.finish_slot(job, slot, report)
    return report


def manual_slot() -> str:
    return f"manual-{uuid.uuid4().hex[:12]}"


def _sweep(res: Resources, app: Any, slot: str) -> dict[str, Any]:
    runnable = res.store.maintenance.runnable_sessions()
    for session in runnable:
        poke_session(app, session.session_id, force=True)
    # Level-triggered like the sessions: every running process with no live lease.
    processes = res.store.processes.runnable()
    for process_id in processes:
        poke_process(app, process_id)
    replies = republish_unsent(app, res.store.replies)
    return {
        "poked_sessions": len(runnable),
        "poked_processes": len(processes),
        "republished_replies": replies,
    }


def _tombstone_orphans(res: Resources, app: Any, slot: str) -> dict[str, Any]:
    store = res.store
    retention_ms = res.settings.orphan_retention_s * 1000
    last = store.maintenance.last_start("tombstone_orphans", slot)
    # Orphans made just before the last run were too young then; look back one retention
    # window so they are reached once they come of age.
    since = 0 if last is None else last - retention_ms
    until = store.database.db_now_ms()
    checked = tombstoned = 0
    after: tuple[int, str] | None = None
    # Bounded pages until every session changed in the window is done: a fixed cap
    # starved the most recently changed sessions whenever more than it changed.
    while page := store.maintenance.changed_sessions_page(since, until, after, ORPHAN_PAGE_SIZE):
        after = page[-1]
        for _, session_id in page:
            try:
                record = store.sessions.record(session_id)
                if record.policy is not None and record.policy.orphan_policy == "keep_history":
                    continue
                tombstoned += store.maintenance.tombstone_old_orphans(session_id, retention_ms)
            except SessionNotFound:
                continue  # deleted since the page was read
            checked += 1
    return {"sessions_checked": checked, "tombstoned_nodes": tombstoned}


def _vacuum(res: Resources, app: Any, slot: str) -> dict[str, Any]:
    settings = res.settings
    report = res.store.maintenance.vacuum(
        input_retention_ms=settings.input_retention_s * 1000,
        journal_retention_ms=settings.lease_ttl_ms,
        event_retention_ms=settings.events_db_retention_s * 1000,
        event_keep=settings.events_db_keep,
    )
    return report.to_dict()


def _reclaim_attachments(res: Resources, app: Any, slot: str) -> dict[str, Any]:
    report = reclaim_unreferenced_attachments(
        res.store.manifest, res.blobs, grace_ms=res.settings.attachment_grace_s * 1000
    )
    return dict(report.to_dict())


def _prune_processes(res: Resources, app: Any, slot: str) -> dict[str, Any]:
    cutoff = res.store.database.db_now_ms() - res.settings.process_retention_s * 1000
    return {"pruned_processes": res.store.maintenance.prune_terminal_processes(cutoff)}


_JOBS = {
    "sweep": _sweep,
    "tombstone_orphans": _tombstone_orphans,
    "vacuum": _vacuum,
    "reclaim_attachments": _reclaim_attachments,
    "prune_processes": _prune_processes,
}
