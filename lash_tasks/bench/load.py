"""A closed-loop turn load: every session keeps one input outstanding, as users do."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from lash_tasks.client import Client
from lash_tasks.store import schema as t

POLL_S = 0.005


@dataclass
class LoadResult:
    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    # (seconds since start, turns completed so far), one point per poll
    progress: list[tuple[float, int]] = field(default_factory=list)

    def rate(self, start_s: float, end_s: float) -> float:
        """Turns completed per second between two moments of the run."""
        points = [(s, n) for s, n in self.progress if start_s <= s <= end_s]
        if len(points) < 2:
            return 0.0
        (s0, n0), (s1, n1) = points[0], points[-1]
        return (n1 - n0) / (s1 - s0) if s1 > s0 else 0.0


def closed_loop(
    client: Client, session_ids: list[str], duration_s: float, stop: threading.Event | None = None
) -> LoadResult:
    """Run turns on every session for `duration_s`; each completion enqueues the next input.

    One query per poll finds the completed inputs of all sessions, so that watching the load
    costs the database next to nothing.
    """
    result = LoadResult()
    outstanding: dict[str, tuple[str, float]] = {}
    started = time.perf_counter()

    def submit(session_id: str) -> None:
        input_id = client.enqueue_turn(session_id, f"bench {uuid.uuid4().hex[:8]}")
        outstanding[input_id] = (session_id, time.perf_counter())

    for session_id in session_ids:
        submit(session_id)
    p = t.pending_inputs
    deadline = started + duration_s
    with client.store.database.engine.connect() as conn:
        while time.perf_counter() < deadline and not (stop and stop.is_set()):
            rows = conn.execute(
                select(p.c.input_id).where(
                    p.c.input_id.in_(list(outstanding)), p.c.state.in_(["completed", "cancelled"])
                )
            ).all()
            conn.commit()
            now = time.perf_counter()
            for row in rows:
                session_id, sent = outstanding.pop(row.input_id)
                result.latencies.append(now - sent)
                result.completed += 1
                if now < deadline:
                    submit(session_id)
            result.progress.append((now - started, result.completed))
            time.sleep(POLL_S)
    return result
