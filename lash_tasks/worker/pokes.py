"""Pokes: Celery messages that only say "session X may have work". Ids, never payloads.

Publish only after the commit that created the work is durable. With Redis at hand,
pokes are coalesced: a poke is published only if none is already waiting for the
session (SET NX on a mark the step task clears as it starts), so a flood of pokes
collapses into at most one extra task. Delayed re-pokes for busy sessions have a mark
of their own, so at most one is outstanding per session. Coalescing only ever saves
messages: the sweeper pokes with `force`, so a mark whose message was lost (a flushed
broker) cannot hold work back for longer than one sweep.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)
STEP_TASK = "lash.session.step"
PROCESS_TASK = "lash.process.run"
POKE_MARK_TTL_S = 30


def _mark(redis_client: Any, key: str, ttl_ms: int) -> bool:
    """True if this caller set the mark (or coalescing is unavailable)."""
    if redis_client is None:
        return True
    try:
        return bool(redis_client.set(key, "1", nx=True, px=ttl_ms))
    except Exception as exc:  # coalescing is an optimisation; the poke is what matters
        log.warning("poke coalescing unavailable: %s", type(exc).__name__)
        return True


def poke_session(
    app: Any,
    session_id: str,
    redis_client: Any = None,
    *,
    countdown: float | None = None,
    force: bool = False,
) -> bool:
    """Publish a step poke unless one is already waiting. True if a message was sent.

    Never raises for an unreachable broker: it logs and returns False.
    """
    if not force and not _mark(redis_client, f"lash:poke:{session_id}", POKE_MARK_TTL_S * 1000):
        return False
    try:
        app.send_task(STEP_TASK, args=(session_id,), queue="lash.turns", countdown=countdown)
    except (OperationalError, OSError) as exc:
        # The broker is unreachable (restarting, partitioned) after kombu's own publish retries.
        # The work is already durable, so the step or enqueue that pokes must not fail for it:
        # the sweeper re-pokes every session with work and no live lease.
        log.warning("poke for %s not published, the sweeper will: %s", session_id, exc)
        return False
    return True


def clear_poke_mark(redis_client: Any, session_id: str) -> None:
    """Called as a step starts: pokes arriving from now on must publish again."""
    if redis_client is None:
        return
    try:
        redis_client.delete(f"lash:poke:{session_id}")
    except Exception as exc:
        log.warning("could not clear poke mark: %s", type(exc).__name__)


def repoke_later(app: Any, redis_client: Any, session_id: str, delay_ms: int) -> bool:
    """Schedule one delayed re-poke unless one is already outstanding. True if scheduled."""
    delay_s = max(0.05, delay_ms / 1000) + random.uniform(0, 0.25)
    if not _mark(redis_client, f"lash:repoke:{session_id}", int(delay_s * 1000) + 500):
        return False
    poke_session(app, session_id, countdown=delay_s, force=True)
    return True


def poke_process(
    app: Any, process_id: str, redis_client: Any = None, *, countdown: float | None = None
) -> bool:
    """Publish `lash.process.run(process_id)` on `lash.processes` (after the commit that
    registered or advanced the process). Never raises for an unreachable broker: the
    sweeper re-pokes every runnable process."""
    try:
        app.send_task(PROCESS_TASK, args=(process_id,), queue="lash.processes", countdown=countdown)
    except (OperationalError, OSError) as exc:
        log.warning("poke for process %s not published, the sweeper will: %s", process_id, exc)
        return False
    return True


def repoke_process_later(app: Any, redis_client: Any, process_id: str, delay_ms: int) -> bool:
    """One delayed re-poke per process however many pokes met a busy lease."""
    delay_s = max(0.05, delay_ms / 1000) + random.uniform(0, 0.25)
    if not _mark(redis_client, f"lash:repoke-process:{process_id}", int(delay_s * 1000) + 500):
        return False
    return poke_process(app, process_id, countdown=delay_s)


def retry_delay_s(retries: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter for transient failures."""
    return random.uniform(0, min(cap, base * (2**retries)))
