"""The beat schedule only: which maintenance job runs how often (seconds)."""

from __future__ import annotations

import os

_SWEEP = float(os.environ.get("LASH_SWEEP_INTERVAL_S") or 15)

JOB_INTERVALS_S: dict[str, float] = {
    "sweep": _SWEEP,
    "tombstone_orphans": 300.0,
    "vacuum": 3600.0,
    "reclaim_attachments": 3600.0,
    "prune_processes": 3600.0,
}

beat_schedule = {
    f"lash-{job}": {
        "task": f"lash.maintenance.{job}",
        "schedule": interval,
        "options": {"queue": "lash.maintenance", "expires": interval},
    }
    for job, interval in JOB_INTERVALS_S.items()
}
