"""The beat schedule: which maintenance job runs how often, from `Settings` (LASH_*_INTERVAL_S)."""

from __future__ import annotations

from typing import Any

from lash_tasks.settings import Settings
from lash_tasks.worker import queues


def job_intervals_s(settings: Settings) -> dict[str, int]:
    """Seconds between two firings of each maintenance job.

    Workers need them too: a firing runs once per slot, and the slot is the interval it falls
    in, so two beats firing the same job in one interval share one run.
    """
    return {
        "sweep": settings.sweep_interval_s,
        "tombstone_orphans": settings.tombstone_orphans_interval_s,
        "vacuum": settings.vacuum_interval_s,
        "reclaim_attachments": settings.reclaim_attachments_interval_s,
        "prune_processes": settings.prune_processes_interval_s,
    }


def beat_schedule_for(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's `beat_schedule`: each job on its own queue, expiring when its next firing is due
    (a firing nobody took in time is superseded, never piled up)."""
    return {
        f"lash-{job}": {
            "task": f"lash.maintenance.{job}",
            "schedule": float(interval),
            "options": {"queue": queues.MAINTENANCE, "expires": float(interval)},
        }
        for job, interval in job_intervals_s(settings).items()
    }
