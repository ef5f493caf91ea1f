"""`EffectJournal`: each effect's outcome, keyed by replay key, under an effect lease."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, exists, insert, select, update

from lash_tasks.errors import EffectBusy, EffectError, ReplayMismatch
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.heartbeats import holder_deadline
from lash_tasks.store.records import ExecuteEffect, RecordedEffect
from lash_tasks.store.step_records import EffectOutcome, EffectSlot

_j = t.effect_journal


class EffectJournal:
    def __init__(self, db: Database) -> None:
        self.db = db

    def prepare(
        self,
        *,
        scope_id: str,
        replay_key: str,
        session_id: str,
        turn_id: str | None,
        envelope_hash: str,
        owner: str,
        ttl_ms: int,
        incarnation_id: str | None = None,
    ) -> ExecuteEffect | RecordedEffect:
        """Decide, in one transaction, whether to execute an effect or replay its record.

        An in-progress effect whose lease is live is busy, unless the incarnation holding it
        is provably dead (its heartbeat expired): then it is taken over at once.
        """
        with self.db.tx() as conn:
            # The session lock orders this against delete_session and the final commit, so
            # the checks in `_may_execute` cannot go stale before the insert lands (and it
            # serialises every prepare of the session's effects).
            self.db.lock_session(conn, session_id)
            return prepare_in(
                self.db,
                conn,
                EffectSlot(scope_id, replay_key, session_id, turn_id, envelope_hash),
                owner=owner,
                incarnation_id=incarnation_id,
                ttl_ms=ttl_ms,
                now=self.db.now_ms(conn),
            )

    def renew(self, scope_id: str, replay_key: str, lease_token: str, ttl_ms: int) -> None:
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            result = conn.execute(
                update(_j)
                .where(*_held(scope_id, replay_key, lease_token, now))
                .values(lease_expires_at=now + ttl_ms, updated_at=now)
            )
            if result.rowcount == 0:
                raise EffectError(
                    f"effect lease for {replay_key!r} was lost", replay_key=replay_key
                )

    def finalize(
        self,
        scope_id: str,
        replay_key: str,
        lease_token: str,
        *,
        outcome: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Record the outcome; refused if the effect lease expired or was taken over."""
        with self.db.tx() as conn:
            finalize_in(
                conn,
                EffectOutcome(scope_id, replay_key, lease_token, outcome, error),
                self.db.now_ms(conn),
            )

    def has(self, scope_id: str, replay_key: str) -> bool:
        with self.db.read() as conn:
            row = conn.execute(
                select(_j.c.status).where(_j.c.scope_id == scope_id, _j.c.replay_key == replay_key)
            ).first()
            return row is not None

    def release(self, scope_id: str, replay_key: str, lease_token: str) -> None:
        """Give an in-progress effect up without an outcome: the next attempt takes over."""
        with self.db.tx() as conn:
            conn.execute(
                update(_j)
                .where(
                    _j.c.scope_id == scope_id,
                    _j.c.replay_key == replay_key,
                    _j.c.lease_token == lease_token,
                    _j.c.status == "in_progress",
                )
                .values(lease_expires_at=0, updated_at=self.db.now_ms(conn))
            )

    def entries(self, session_id: str, turn_id: str | None = None) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            query = select(_j).where(_j.c.session_id == session_id)
            if turn_id is not None:
                query = query.where(_j.c.turn_id == turn_id)
            rows = conn.execute(query.order_by(_j.c.created_at, _j.c.replay_key))
            return [
                {
                    "replay_key": r.replay_key,
                    "status": r.status,
                    "outcome": r.outcome,
                    "error": r.error,
                    "turn_id": r.turn_id,
                }
                for r in rows
            ]


def _may_execute(conn: Connection, session_id: str, turn_id: str | None, replay_key: str) -> None:
    """Refuse to (re-)execute an effect for a deleted session or an already committed turn:
    only a stale step asks, and its effects would run twice (a second LLM bill, a tool's
    side effect) for a result nobody can commit."""
    stamps = t.turn_commits
    live, committed = conn.execute(
        select(
            exists().where(t.sessions.c.session_id == session_id),
            exists().where(stamps.c.session_id == session_id, stamps.c.turn_id == turn_id),
        )
    ).one()
    if not live or (turn_id is not None and committed):
        reason = "its session was deleted" if not live else f"turn {turn_id!r} is committed"
        raise EffectError(
            f"effect {replay_key!r} may not run: {reason}; the step asking is stale",
            replay_key=replay_key,
            session_id=session_id,
        )


def _held(scope_id: str, replay_key: str, lease_token: str, now: int) -> list[Any]:
    """The row is still in progress under this effect lease, unexpired at `now`."""
    return [
        _j.c.scope_id == scope_id,
        _j.c.replay_key == replay_key,
        _j.c.lease_token == lease_token,
        _j.c.status == "in_progress",
        _j.c.lease_expires_at > now,
    ]


def prepare_in(
    db: Database,
    conn: Connection,
    slot: EffectSlot,
    *,
    owner: str,
    incarnation_id: str | None,
    ttl_ms: int,
    now: int,
    turn_known_open: bool = False,
) -> ExecuteEffect | RecordedEffect:
    """`EffectJournal.prepare` inside the caller's transaction, which holds the session
    lock. `turn_known_open`: the caller just read the session and its uncommitted turn in
    this transaction, so the stale-step check has nothing to add."""
    scope_id, replay_key = slot.scope_id, slot.replay_key
    row = conn.execute(
        db.dialect.for_update(
            select(_j).where(_j.c.scope_id == scope_id, _j.c.replay_key == replay_key)
        )
    ).first()
    token = uuid.uuid4().hex
    if row is None:
        if not turn_known_open:
            _may_execute(conn, slot.session_id, slot.turn_id, replay_key)
        conn.execute(
            insert(_j).values(
                scope_id=scope_id,
                replay_key=replay_key,
                session_id=slot.session_id,
                turn_id=slot.turn_id,
                envelope_hash=slot.envelope_hash,
                status="in_progress",
                lease_owner=owner,
                lease_incarnation_id=incarnation_id,
                lease_token=token,
                lease_expires_at=now + ttl_ms,
                created_at=now,
                updated_at=now,
            )
        )
        return ExecuteEffect(token)
    if row.envelope_hash != slot.envelope_hash:
        raise ReplayMismatch(
            f"effect {replay_key!r} was recorded with a different envelope; "
            "the step no longer matches its journal",
            replay_key=replay_key,
            recorded_hash=row.envelope_hash,
            new_hash=slot.envelope_hash,
        )
    if row.status in ("completed", "failed"):
        return RecordedEffect(row.status, row.outcome, row.error)
    if row.lease_expires_at is not None and row.lease_expires_at > now:
        deadline = holder_deadline(conn, row.lease_incarnation_id)
        if deadline is None or deadline > now:
            free_at = (
                row.lease_expires_at if deadline is None else min(row.lease_expires_at, deadline)
            )
            raise EffectBusy(
                f"effect {replay_key!r} is being executed by {row.lease_owner!r}",
                replay_key=replay_key,
                retry_after_ms=free_at - now,
            )
    if not turn_known_open:
        _may_execute(conn, slot.session_id, slot.turn_id, replay_key)
    conn.execute(
        update(_j)
        .where(_j.c.scope_id == scope_id, _j.c.replay_key == replay_key)
        .values(
            lease_owner=owner,
            lease_incarnation_id=incarnation_id,
            lease_token=token,
            lease_expires_at=now + ttl_ms,
            updated_at=now,
        )
    )
    return ExecuteEffect(token, took_over=True)


def finalize_in(conn: Connection, effect: EffectOutcome, now: int, *, fenced: bool = False) -> None:
    """`EffectJournal.finalize` inside the caller's transaction. A lost effect lease raises
    `EffectError`: another step owns the effect now, and this one must not commit.

    `fenced`: the caller checked its session lease in this transaction. Only a holder of
    the session lease prepares the session's effects, so the effect is still this step's as
    long as its token stands, even if the effect lease's own expiry went by meanwhile.
    """
    held = _held(effect.scope_id, effect.replay_key, effect.lease_token, now)
    if fenced:
        held = held[:-1]  # the expiry condition is last
    result = conn.execute(
        update(_j)
        .where(*held)
        .values(
            status="failed" if effect.error is not None else "completed",
            outcome=effect.outcome,
            error=effect.error,
            lease_owner=None,
            lease_incarnation_id=None,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    if result.rowcount == 0:
        raise EffectError(
            f"cannot finalize effect {effect.replay_key!r}: its lease expired or was taken over",
            replay_key=effect.replay_key,
        )
