"""Process retention: what deleting a session does to its processes, and pruning terminal
processes past retention. Both run inside a caller's transaction (`store.sessions.delete`,
`store.maintenance.prune_processes`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, String, cast, delete, exists, func, literal, select, update

from lash_tasks.errors import ValidationError
from lash_tasks.machine.processes import TERMINAL_STATUSES
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.process_records import RevokedSession
from lash_tasks.store.processes import decode_process, next_change_seq

_p = t.processes
_e = t.process_events
_g = t.process_grants


def revoke_session_in(db: Database, conn: Connection, session_id: str, now: int) -> RevokedSession:
    """Inside `delete_session`'s transaction (session locked): revoke the session's handle
    grants and wake bookkeeping, and delete its terminal processes. Running processes live
    on — never cancelled silently — and one left with no grant is reported orphaned."""
    tied = select(_p.c.process_id).where(
        (_p.c.session_id == session_id)
        | (_p.c.wake_session_id == session_id)
        | _p.c.process_id.in_(select(_g.c.process_id).where(_g.c.session_id == session_id))
    )
    rows = conn.execute(select(_p).where(_p.c.process_id.in_(tied)).order_by(_p.c.process_id))
    records = [decode_process(r) for r in rows]
    revoked = conn.execute(delete(_g).where(_g.c.session_id == session_id)).rowcount
    cleared = 0
    orphaned: list[str] = []
    for record in records:
        if record.status.terminal and record.session_id == session_id:
            conn.execute(delete(_e).where(_e.c.process_id == record.process_id))
            conn.execute(delete(_g).where(_g.c.process_id == record.process_id))
            conn.execute(delete(_p).where(_p.c.process_id == record.process_id))
            continue
        values: dict[str, Any] = {}
        if record.session_id == session_id:
            values["session_id"] = None
        if record.wake_session_id == session_id:
            values["wake_session_id"] = None
            cleared += 1
        if values:
            values.update(updated_at=now, change_seq=next_change_seq(db, conn))
            conn.execute(update(_p).where(_p.c.process_id == record.process_id).values(**values))
        left = conn.execute(
            select(func.count()).select_from(_g).where(_g.c.process_id == record.process_id)
        ).scalar_one()
        if not record.status.terminal and int(left) == 0:
            orphaned.append(record.process_id)
    return RevokedSession(int(revoked), cleared, tuple(orphaned))


def prune_in(conn: Connection, older_than_ms: int, watermark: int | None = None) -> int:
    """Delete terminal processes last written before the cutoff, with their events and
    grants, and (given a change-feed `watermark`) only those whose last change is at or
    before it. A running process is never pruned, however old; nor is one whose wake is
    still in its target's queue (until vacuum removes it, done): the id, registered again,
    would complete under the same wake source key and collide with that batch."""
    if watermark is not None and watermark < 0:
        raise ValidationError("a prune watermark must be >= 0", field="watermark")
    # The terminal event is a process's last: its seq names the wake (`wake_source_key`).
    last_seq = select(func.max(_e.c.seq)).where(_e.c.process_id == _p.c.process_id)
    wake_key = (
        literal("process:")
        + _p.c.process_id
        + literal(":event:")
        + cast(last_seq.scalar_subquery(), String)
        + literal(":wake")
    )
    wake_queued = exists().where(
        t.queued_work.c.session_id == _p.c.wake_session_id,
        t.queued_work.c.source_key == wake_key,
    )
    doomed = select(_p.c.process_id).where(
        _p.c.status.in_([s.value for s in TERMINAL_STATUSES]),
        _p.c.updated_at < older_than_ms,
        ~wake_queued,
    )
    if watermark is not None:
        doomed = doomed.where(_p.c.change_seq <= watermark)
    ids = [r.process_id for r in conn.execute(doomed)]
    if not ids:
        return 0
    conn.execute(delete(_e).where(_e.c.process_id.in_(ids)))
    conn.execute(delete(_g).where(_g.c.process_id.in_(ids)))
    return int(conn.execute(delete(_p).where(_p.c.process_id.in_(ids))).rowcount)
