"""The fleet's backlog, read from the database (the truth, whichever worker holds what):
work waiting and how long the oldest has waited. For metrics; a few aggregate reads."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.records import InputState
from lash_tasks.store.work_queue import QueueState

WAITING_INPUT_STATES = (InputState.PENDING, InputState.PENDING_ACTIVE)


@dataclass(frozen=True)
class BacklogSnapshot:
    pending_inputs: int
    oldest_pending_input_age_s: float  # 0 when nothing waits
    ready_queued_work: int
    active_turns: int
    sessions: int


class Backlog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def snapshot(self) -> BacklogSnapshot:
        """Counts of waiting work, with its age by the database clock, in one read."""
        inputs, queued = t.pending_inputs, t.queued_work
        with self.db.read() as conn, conn.begin():
            now = self.db.now_ms(conn)
            waiting, oldest = conn.execute(
                select(func.count(), func.min(inputs.c.enqueued_at)).where(
                    inputs.c.state.in_([s.value for s in WAITING_INPUT_STATES])
                )
            ).one()
            ready = conn.execute(
                select(func.count()).where(queued.c.state == QueueState.READY.value)
            ).scalar_one()
            active = conn.execute(select(func.count()).select_from(t.active_turns)).scalar_one()
            sessions = conn.execute(select(func.count()).select_from(t.sessions)).scalar_one()
        return BacklogSnapshot(
            pending_inputs=int(waiting),
            oldest_pending_input_age_s=max(0.0, (now - oldest) / 1000) if oldest else 0.0,
            ready_queued_work=int(ready),
            active_turns=int(active),
            sessions=int(sessions),
        )
