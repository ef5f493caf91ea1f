"""Pokes: Celery messages that only say "session X may have work". Ids, never payloads.

Publish only after the commit that created the work is durable. Delayed re-pokes
for busy sessions are coalesced through Redis (SET NX), so a flood of pokes for one
busy session leaves at most one delayed re-poke outstanding.
"""

from __future__ import annotations

import logging
import random
from typing import Any

log = logging.getLogger(__name__)
STEP_TASK = "lash.session.step"
PROCESS_TASK = "lash.process.run"


def poke_session(app: Any, session_id: str, countdown: float | None = None) -> None:
    app.send_task(STEP_TASK, args=(session_id,), queue="lash.turns", countdown=countdown)


def repoke_later(app: Any, redis_client: Any, session_id: str, delay_ms: int) -> bool:
    """Schedule one delayed re-poke unless one is already outstanding. True if scheduled."""
    delay_s = max(0.05, delay_ms / 1000) + random.uniform(0, 0.25)
    if redis_client is not None:
        key = f"lash:repoke:{session_id}"
        try:
            if not redis_client.set(key, "1", nx=True, px=int(delay_s * 1000) + 500):
                return False
        except Exception as exc:  # coalescing is an optimisation; the poke is what matters
            log.warning("re-poke coalescing unavailable: %s", type(exc).__name__)
    poke_session(app, session_id, countdown=delay_s)
    return True


def retry_delay_s(retries: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter for transient failures."""
    return random.uniform(0, min(cap, base * (2**retries)))
