"""`Heartbeats`: worker liveness, one heartbeat row per process incarnation (DESIGN §4.2).

A lease (session or effect) names the incarnation that holds it. While that incarnation's
heartbeat row is unexpired, or when it has no row at all (an in-process `run_step` from a
test or the CLI), the lease lives until its ttl. Once the row has expired, the holder is
provably dead, and its leases are taken over at once, with a new fencing token as always.

A row expires when its process stops beating for a few intervals, or at once when a new
incarnation of the same owner proves the old process gone and declares it dead, or when
the process retires on a clean shutdown. A dead row is *reaped* once: the reaper learns
which sessions the dead incarnation held, so they can be poked instead of waiting for the
sweeper. Rows dead for longer than every lease's ttl are deleted by the heartbeat writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, insert, select, update

from lash_tasks.errors import ValidationError
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database

_hb = t.worker_heartbeats


@dataclass(frozen=True)
class Incarnation:
    """One worker process start, as its heartbeat row says."""

    incarnation_id: str
    owner_id: str
    started_at: int
    heartbeat_at: int
    expires_at: int
    reaped_at: int | None
    liveness: dict[str, Any] | None


def _check_ids(owner_id: str, incarnation_id: str) -> None:
    if not owner_id or not incarnation_id:
        raise ValidationError("worker owner id and incarnation id must not be empty")
    if len(owner_id) > 200 or len(incarnation_id) > 200:
        raise ValidationError("worker owner id and incarnation id must be at most 200 characters")


def _check_grace(grace_ms: int) -> None:
    if grace_ms <= 0:
        raise ValidationError("heartbeat grace must be positive")


class Heartbeats:
    def __init__(self, db: Database) -> None:
        self.db = db

    def live_incarnations(self, owner_id: str) -> list[Incarnation]:
        """The owner's incarnations whose heartbeat has not expired, oldest first."""
        with self.db.read() as conn:
            now = self.db.now_ms(conn)
            rows = conn.execute(
                select(_hb)
                .where(_hb.c.owner_id == owner_id, _hb.c.expires_at > now)
                .order_by(_hb.c.started_at)
            )
            return [_decode(r) for r in rows]

    def incarnation(self, incarnation_id: str) -> Incarnation | None:
        with self.db.read() as conn:
            row = conn.execute(select(_hb).where(_hb.c.incarnation_id == incarnation_id)).first()
            return None if row is None else _decode(row)

    def register(
        self,
        owner_id: str,
        incarnation_id: str,
        *,
        grace_ms: int,
        liveness: dict[str, Any] | None = None,
        declare_dead: Sequence[str] = (),
    ) -> bool:
        """Start beating for a new incarnation of `owner_id`.

        `declare_dead` names earlier incarnations of the same owner that the caller proved
        gone (their process no longer exists): they expire now, so their leases are taken
        over at once. Returns False, writing nothing, if another incarnation of the owner is
        live and not in `declare_dead` (a second process with the same identity, or one
        that started meanwhile): the caller must judge it first.
        """
        _check_ids(owner_id, incarnation_id)
        _check_grace(grace_ms)
        with self.db.tx() as conn:
            self.db.lock_key(conn, "worker-owner:" + owner_id)
            now = self.db.now_ms(conn)
            live = conn.execute(
                select(_hb.c.incarnation_id).where(
                    _hb.c.owner_id == owner_id,
                    _hb.c.expires_at > now,
                    _hb.c.incarnation_id != incarnation_id,
                )
            ).scalars()
            if set(live) - set(declare_dead):
                return False
            if declare_dead:
                conn.execute(
                    update(_hb)
                    .where(
                        _hb.c.owner_id == owner_id,
                        _hb.c.incarnation_id.in_(list(declare_dead)),
                        _hb.c.expires_at > now,
                    )
                    .values(expires_at=now)
                )
            conn.execute(delete(_hb).where(_hb.c.incarnation_id == incarnation_id))
            conn.execute(
                insert(_hb).values(
                    incarnation_id=incarnation_id,
                    owner_id=owner_id,
                    started_at=now,
                    heartbeat_at=now,
                    expires_at=now + grace_ms,
                    liveness=liveness,
                )
            )
            return True

    def beat(
        self,
        owner_id: str,
        incarnation_id: str,
        *,
        grace_ms: int,
        liveness: dict[str, Any] | None = None,
    ) -> bool:
        """Record that the incarnation is alive until `grace_ms` from now.

        Returns False if its row was gone (deleted long after it was declared dead, say
        after a very long pause) and had to be written again.
        """
        _check_ids(owner_id, incarnation_id)
        _check_grace(grace_ms)
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            # A process that was declared dead but is running again is alive: its leases
            # that nobody took over meanwhile are live again, the others are fenced off.
            found = conn.execute(
                update(_hb)
                .where(_hb.c.incarnation_id == incarnation_id)
                .values(heartbeat_at=now, expires_at=now + grace_ms, reaped_at=None)
            ).rowcount
            if found:
                return True
            conn.execute(
                insert(_hb).values(
                    incarnation_id=incarnation_id,
                    owner_id=owner_id,
                    started_at=now,
                    heartbeat_at=now,
                    expires_at=now + grace_ms,
                    liveness=liveness,
                )
            )
            return False

    def retire(self, incarnation_id: str) -> None:
        """Declare the incarnation dead now (a clean shutdown): whatever it still holds is
        taken over at once."""
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            conn.execute(
                update(_hb)
                .where(_hb.c.incarnation_id == incarnation_id, _hb.c.expires_at > now)
                .values(expires_at=now)
            )

    def reap_dead(self, *, retention_ms: int, limit: int = 50) -> list[str]:
        """Reap each dead, unreaped incarnation once; return the sessions whose leases it
        still names, for the caller to poke. A lease that expired before the death was
        noticed counts too: nobody else would poke its session before the next sweep.
        Rows dead for `retention_ms` are deleted: by then every lease they held has expired
        by its own ttl."""
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            dead = conn.execute(
                self.db.dialect.for_update(
                    select(_hb.c.incarnation_id)
                    .where(_hb.c.expires_at <= now, _hb.c.reaped_at.is_(None))
                    .order_by(_hb.c.expires_at)
                    .limit(limit),
                    skip_locked=True,
                )
            ).scalars()
            sessions: list[str] = []
            leases = t.session_leases
            for incarnation_id in list(dead):
                won = conn.execute(
                    update(_hb)
                    .where(
                        _hb.c.incarnation_id == incarnation_id,
                        _hb.c.reaped_at.is_(None),
                        _hb.c.expires_at <= now,
                    )
                    .values(reaped_at=now)
                ).rowcount
                if not won:
                    continue
                sessions += conn.execute(
                    select(leases.c.session_id).where(
                        leases.c.incarnation_id == incarnation_id,
                        leases.c.owner_id.is_not(None),
                    )
                ).scalars()
            conn.execute(delete(_hb).where(_hb.c.expires_at <= now - retention_ms))
            return sessions


def _decode(row: Any) -> Incarnation:
    return Incarnation(
        incarnation_id=row.incarnation_id,
        owner_id=row.owner_id,
        started_at=int(row.started_at),
        heartbeat_at=int(row.heartbeat_at),
        expires_at=int(row.expires_at),
        reaped_at=None if row.reaped_at is None else int(row.reaped_at),
        liveness=None if row.liveness is None else dict(row.liveness),
    )


def holder_is_dead(incarnation_id: Any, now: int) -> ColumnElement[bool]:
    """SQL: the incarnation `incarnation_id` (a column or value) has an expired heartbeat."""
    return exists().where(_hb.c.incarnation_id == incarnation_id, _hb.c.expires_at <= now)


def holder_deadline(conn: Connection, incarnation_id: str | None) -> int | None:
    """When the holder is (or was) declared dead unless it beats again; None without a row."""
    if incarnation_id is None:
        return None
    value = conn.execute(
        select(_hb.c.expires_at).where(_hb.c.incarnation_id == incarnation_id)
    ).scalar()
    return None if value is None else int(value)
