"""`Leases`: mutual exclusion per session with a fencing token that only goes up."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Update, insert, select, update

from lash_tasks.errors import LeaseLost, ValidationError
from lash_tasks.machine import Fence
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.heartbeats import holder_deadline
from lash_tasks.store.records import Busy, Lease

DEFAULT_TTL_MS = 30_000


class Leases:
    def __init__(self, db: Database) -> None:
        self.db = db

    def try_claim(
        self, session_id: str, owner_id: str, incarnation_id: str, ttl_ms: int = DEFAULT_TTL_MS
    ) -> Lease | Busy:
        """Take the lease, re-enter it (same owner and incarnation), or report who holds it.

        A live lease whose holder is provably dead (its heartbeat expired) is taken over
        like an expired one. `Busy.retry_after_ms` is when the lease would be free: at its
        expiry, or earlier when the holder would be declared dead if it stopped beating now.
        """
        check_session_id(session_id)
        if not owner_id or not incarnation_id:
            raise ValidationError("lease owner id and incarnation id must not be empty")
        if ttl_ms <= 0:
            raise ValidationError("lease ttl must be positive")
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            self.db.require_session(conn, session_id)
            return take_lease(
                conn, session_id, owner_id, incarnation_id, ttl_ms, self.db.now_ms(conn)
            )

    def renew(self, fence: Fence, ttl_ms: int = DEFAULT_TTL_MS) -> int:
        """Extend a held lease; returns the new expiry. A stale fence raises `LeaseLost`."""
        leases = t.session_leases
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            result = conn.execute(
                update(leases)
                .where(
                    leases.c.session_id == fence.session_id,
                    leases.c.owner_id == fence.owner_id,
                    leases.c.lease_token == fence.lease_token,
                    leases.c.fencing_token == fence.fencing_token,
                    leases.c.expires_at > now,
                )
                .values(expires_at=now + ttl_ms)
            )
            if result.rowcount == 0:
                raise LeaseLost(
                    f"cannot renew: lease on session {fence.session_id!r} "
                    f"(fencing token {fence.fencing_token}) expired or was taken over",
                    session_id=fence.session_id,
                )
            return now + ttl_ms

    def release(self, fence: Fence) -> bool:
        """Give the lease up. Idempotent; never clears a newer owner; the fencing token stays."""
        with self.db.tx() as conn:
            return conn.execute(release_statement(fence)).rowcount > 0

    def state(self, session_id: str) -> tuple[str | None, int, int | None]:
        """(owner or None, fencing token, expires_at) as stored — for operators and tests."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.session_leases).where(t.session_leases.c.session_id == session_id)
            ).first()
            if row is None:
                return None, 0, None
            return row.owner_id, int(row.fencing_token), row.expires_at


def release_statement(fence: Fence) -> Update:
    """Clear the lease iff `fence` still names its holder. The fencing token stays."""
    leases = t.session_leases
    return (
        update(leases)
        .where(
            leases.c.session_id == fence.session_id,
            leases.c.owner_id == fence.owner_id,
            leases.c.lease_token == fence.lease_token,
            leases.c.fencing_token == fence.fencing_token,
        )
        .values(owner_id=None, incarnation_id=None, lease_token=None, expires_at=None)
    )


UNREAD: Any = object()


def take_lease(
    conn: Connection,
    session_id: str,
    owner_id: str,
    incarnation_id: str,
    ttl_ms: int,
    now: int,
    lease_row: Any = UNREAD,
) -> Lease | Busy:
    """Take, re-enter or report the lease, inside the caller's transaction (which holds the
    session lock and has checked that the session exists). `lease_row`: the lease row when
    the caller read it in this transaction (None: the session has none yet)."""
    leases = t.session_leases
    row = (
        conn.execute(select(leases).where(leases.c.session_id == session_id)).first()
        if lease_row is UNREAD
        else lease_row
    )
    live = row is not None and row.owner_id is not None and (row.expires_at or 0) > now
    if row is not None and live:
        if row.owner_id == owner_id and row.incarnation_id == incarnation_id:
            conn.execute(
                update(leases)
                .where(leases.c.session_id == session_id)
                .values(expires_at=now + ttl_ms)
            )
            return Lease(
                session_id,
                owner_id,
                incarnation_id,
                row.lease_token,
                row.fencing_token,
                row.claimed_at,
                now + ttl_ms,
            )
        # A holder whose heartbeat stopped is dead: take over now, not at expiry.
        deadline = holder_deadline(conn, row.incarnation_id)
        if deadline is None or deadline > now:
            retry_at = row.expires_at if deadline is None else min(row.expires_at, deadline)
            return Busy(session_id, row.owner_id, row.expires_at, max(0, retry_at - now))
    fencing = (row.fencing_token if row is not None else 0) + 1
    token = uuid.uuid4().hex
    values = {
        "owner_id": owner_id,
        "incarnation_id": incarnation_id,
        "lease_token": token,
        "fencing_token": fencing,
        "claimed_at": now,
        "expires_at": now + ttl_ms,
    }
    if row is None:
        conn.execute(insert(leases).values(session_id=session_id, **values))
    else:
        conn.execute(update(leases).where(leases.c.session_id == session_id).values(**values))
    return Lease(session_id, owner_id, incarnation_id, token, fencing, now, now + ttl_ms)
