"""`SessionEvents`: the database log of a session's committed events (`lash_session_events`).

The step's commit appends them (`append_events`, inside its transaction), numbered 1, 2, 3 …
per session under the session lock; readers page through them by number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select

from lash_tasks.store import schema as t
from lash_tasks.store.database import Database

_e = t.session_events


class SessionEvents:
    def __init__(self, db: Database) -> None:
        self.db = db

    def after(self, session_id: str, seq: int, limit: int) -> list[tuple[int, Any]]:
        """Up to `limit` events numbered after `seq`, as `(seq, stored record)` in order."""
        # A transaction for its error mapping: a follower sees a typed `StoreUnavailable`.
        with self.db.tx() as conn:
            rows = conn.execute(
                select(_e.c.seq, _e.c.event)
                .where(_e.c.session_id == session_id, _e.c.seq > seq)
                .order_by(_e.c.seq)
                .limit(limit)
            )
            return [(int(r.seq), r.event) for r in rows]

    def last_seq(self, session_id: str) -> int:
        """The number of the session's last event; 0 if it has none."""
        with self.db.tx() as conn:
            last = conn.execute(select(func.max(_e.c.seq)).where(_e.c.session_id == session_id))
            return int(last.scalar() or 0)


def append_events(
    conn: Connection, session_id: str, events: Sequence[dict[str, Any]], now: int
) -> None:
    """Number the events after the session's last; the caller's session lock makes `max` safe."""
    last = conn.execute(select(func.max(_e.c.seq)).where(_e.c.session_id == session_id))
    start = (last.scalar() or 0) + 1
    rows = [
        {"session_id": session_id, "seq": start + i, "event": event, "created_at": now}
        for i, event in enumerate(events)
    ]
    conn.execute(insert(_e), rows)
