"""`Replies`: the reply outbox. A turn's final commit writes one row per input that asked for
its outcome (`write_replies`, inside that commit); the worker publishes them after the commit
and marks them sent; the sweeper republishes rows still unsent. At least once: a receiver
drops repeats by the idempotency key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from lash_tasks.machine import OutboxReply
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database

_r = t.reply_outbox


@dataclass(frozen=True)
class StoredReply:
    """An outbox row: the reply, when it was written and sent, how often it was published."""

    reply: OutboxReply
    created_at: int
    sent_at: int | None
    attempts: int


class Replies:
    def __init__(self, db: Database) -> None:
        self.db = db

    def unsent(self, older_than_ms: int = 0, limit: int = 500) -> list[OutboxReply]:
        """Replies not yet marked sent, written at least `older_than_ms` ago, oldest first:
        the ones a worker should have published by now."""
        with self.db.read() as conn:
            cutoff = self.db.now_ms(conn) - older_than_ms
            rows = conn.execute(
                select(_r)
                .where(_r.c.sent_at.is_(None), _r.c.created_at <= cutoff)
                .order_by(_r.c.created_at)
                .limit(limit)
            )
            return [_decode(r).reply for r in rows]

    def mark_sent(self, replies: Sequence[OutboxReply]) -> None:
        """Record that these replies were handed to the broker (once more)."""
        if not replies:
            return
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            for reply in replies:
                conn.execute(
                    update(_r)
                    .where(
                        _r.c.session_id == reply.session_id,
                        _r.c.idempotency_key == reply.idempotency_key,
                    )
                    .values(sent_at=now, attempts=_r.c.attempts + 1)
                )

    def list(self, session_id: str) -> list[StoredReply]:
        """Every outbox row of the session, oldest first."""
        check_session_id(session_id)
        with self.db.read() as conn:
            rows = conn.execute(
                select(_r).where(_r.c.session_id == session_id).order_by(_r.c.created_at)
            )
            return [_decode(r) for r in rows]


def write_replies(conn: Connection, replies: Sequence[OutboxReply], now: int) -> None:
    """Inside the final commit: one outbox row per reply."""
    conn.execute(
        insert(_r),
        [
            {
                "session_id": r.session_id,
                "idempotency_key": r.idempotency_key,
                "task_name": r.task,
                "queue": r.queue,
                "body": r.body,
                "created_at": now,
                "attempts": 0,
            }
            for r in replies
        ],
    )


def _decode(row: Any) -> StoredReply:
    reply = OutboxReply(row.session_id, row.idempotency_key, row.task_name, row.queue, row.body)
    return StoredReply(reply, row.created_at, row.sent_at, int(row.attempts))
