"""`Turns`: the active turn across lease generations, and what bounds its steps.

A turn begins under one lease and may be resumed under later ones: its claims keep their ids
and tokens and are re-stamped with each new generation. A step's attempt is counted when it
starts (so a worker killed mid-step counts too) and the count is reset by the commit that ends
the step; a step that only found another worker in its way takes its attempt back. The cancel
flag asks the running turn to stop at its next step boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Row, exists, insert, or_, select, update

from lash_tasks.errors import ConflictError, SessionNotFound
from lash_tasks.machine import Fence, TurnState
from lash_tasks.machine.ids import check_session_id, derive_turn_id
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.records import InputState, StepAttempt
from lash_tasks.store.rows import decode_active_turn, turn_state_columns
from lash_tasks.store.work_queue import QueueState

_at = t.active_turns
ERROR_TEXT_LIMIT = 1000


def start_step_attempt(conn: Connection, session_id: str) -> StepAttempt:
    """Count one more start of the active turn's current step (inside the caller's tx)."""
    row = conn.execute(
        update(_at)
        .where(_at.c.session_id == session_id)
        .values(attempts=_at.c.attempts + 1)
        .returning(_at.c.attempts, _at.c.last_error)
    ).first()
    if row is None:
        return StepAttempt(1)
    return StepAttempt(int(row.attempts), row.last_error)


class Turns:
    def __init__(self, db: Database) -> None:
        self.db = db

    def active(self, session_id: str) -> TurnState | None:
        with self.db.read() as conn:
            return decode_active_turn(self.db.active_turn_row(conn, session_id))

    def begin(
        self,
        fence: Fence,
        kind: str,
        claimed_ids: Sequence[str],
        turn: TurnState | None = None,
    ) -> TurnState:
        """Record a new turn as active under `fence` (before its first step commits) and
        return it with its id, taken from the session's next turn number."""
        with self.db.tx() as conn:
            self.db.lock_session(conn, fence.session_id)
            now = self.db.now_ms(conn)
            self.db.check_fence(conn, fence, now)
            if self.db.active_turn_row(conn, fence.session_id) is not None:
                raise ConflictError(
                    f"session {fence.session_id!r} already has an active turn",
                    session_id=fence.session_id,
                )
            session = self.db.require_session(conn, fence.session_id)
            return begin_in(conn, session, kind, claimed_ids, now, turn or TurnState(""))

    def restamp_claims(
        self, fence: Fence, input_claim_id: str | None, queue_claim_id: str | None
    ) -> StepAttempt:
        """Carry the active turn's claims into this lease generation, and count the start
        of another attempt at its current step.

        The turn is continuing durable work, not stealing it: its claims keep their ids
        and tokens, and only their generation moves to the new fencing token.
        """
        with self.db.tx() as conn:
            self.db.lock_session(conn, fence.session_id)
            self.db.check_fence(conn, fence, self.db.now_ms(conn))
            return restamp_in(conn, fence, input_claim_id, queue_claim_id)

    def has_waiting_work(self, session_id: str) -> bool:
        """Pending next-turn input or ready queued work (what a re-poke would find)."""
        with self.db.read() as conn:
            return waiting_in(conn, session_id, self.db.now_ms(conn))

    def result(self, session_id: str, turn_id: str) -> dict[str, Any] | None:
        """The stored result of a committed turn (its outcome), or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.turn_commits.c.result).where(
                    t.turn_commits.c.session_id == session_id,
                    t.turn_commits.c.turn_id == turn_id,
                )
            ).first()
            return dict(row.result) if row is not None else None

    def record_step_failure(self, fence: Fence, turn_id: str, error: dict[str, Any]) -> None:
        """Remember why the running step of `turn_id` failed; refused without the lease."""
        message = str(error.get("message", ""))[:ERROR_TEXT_LIMIT]
        with self.db.tx() as conn:
            self.db.lock_session(conn, fence.session_id)
            self.db.check_fence(conn, fence, self.db.now_ms(conn))
            conn.execute(
                update(_at)
                .where(_at.c.session_id == fence.session_id, _at.c.turn_id == turn_id)
                .values(last_error={"code": str(error.get("code", "error")), "message": message})
            )

    def forgive_step_attempt(self, session_id: str, turn_id: str, step_index: int) -> None:
        """Take back the attempt of a step that was merely in another worker's way.

        Guarded by turn and step: a late call never discounts a later step's attempts.
        """
        with self.db.tx() as conn:
            conn.execute(
                update(_at)
                .where(
                    _at.c.session_id == session_id,
                    _at.c.turn_id == turn_id,
                    _at.c.step_index == step_index,
                    _at.c.attempts > 0,
                )
                .values(attempts=_at.c.attempts - 1)
            )

    def step_attempts(self, session_id: str) -> StepAttempt | None:
        """The active turn's attempt count and last failure (None without an active turn)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_at.c.attempts, _at.c.last_error).where(_at.c.session_id == session_id)
            ).first()
            return None if row is None else StepAttempt(int(row.attempts), row.last_error)

    def request_cancel(self, session_id: str) -> bool:
        """Ask the running turn to stop at its next step boundary. False if none is running."""
        check_session_id(session_id)
        with self.db.tx() as conn:
            if not conn.execute(
                select(t.sessions.c.session_id).where(t.sessions.c.session_id == session_id)
            ).first():
                raise SessionNotFound(f"session {session_id!r} does not exist")
            result = conn.execute(
                update(_at).where(_at.c.session_id == session_id).values(cancel_requested=True)
            )
            return result.rowcount > 0

    def cancel_requested(self, session_id: str, turn_id: str) -> bool:
        """True once an interrupt was requested for the running turn `turn_id`."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_at.c.cancel_requested).where(
                    _at.c.session_id == session_id, _at.c.turn_id == turn_id
                )
            ).first()
            return bool(row is not None and row.cancel_requested)


def begin_in(
    conn: Connection,
    session: Row[Any],
    kind: str,
    claimed_ids: Sequence[str],
    now: int,
    turn: TurnState,
) -> TurnState:
    """Record `turn` as the session's active turn, named from the session's next turn
    number, inside the caller's transaction: the session is locked, `session` is its row,
    no turn is active, and the caller holds the lease. Returns the turn with its id."""
    turn_seq = int(session.turn_seq) + 1
    conn.execute(
        update(t.sessions)
        .where(t.sessions.c.session_id == session.session_id)
        .values(turn_seq=turn_seq)
    )
    turn_id = derive_turn_id(
        kind, claimed_ids, turn_seq=turn_seq, session_created_at=session.created_at
    )
    # The step beginning the turn is its first attempt.
    turn = replace(turn, turn_id=turn_id, step_index=0, attempts=1, last_error=None)
    conn.execute(
        insert(_at).values(
            session_id=session.session_id,
            cancel_requested=False,
            started_at=now,
            **turn_state_columns(turn),
        )
    )
    return turn


def restamp_in(
    conn: Connection, fence: Fence, input_claim_id: str | None, queue_claim_id: str | None
) -> StepAttempt:
    """`Turns.restamp_claims` inside the caller's transaction (session locked, fence held)."""
    attempt = start_step_attempt(conn, fence.session_id)
    if input_claim_id is not None:
        p = t.pending_inputs
        conn.execute(
            update(p)
            .where(
                p.c.session_id == fence.session_id,
                p.c.claim_id == input_claim_id,
                p.c.state.in_([InputState.CLAIMED, InputState.ACCEPTED]),
            )
            .values(claim_generation=fence.fencing_token)
        )
    if queue_claim_id is not None:
        q = t.queued_work
        conn.execute(
            update(q)
            .where(
                q.c.session_id == fence.session_id,
                q.c.claim_id == queue_claim_id,
                q.c.state == QueueState.CLAIMED,
            )
            .values(claim_generation=fence.fencing_token)
        )
    return attempt


def waiting_in(conn: Connection, session_id: str, now: int) -> bool:
    """Whether pending next-turn input or ready queued work waits, in one statement."""
    p, q = t.pending_inputs, t.queued_work
    has_input = exists().where(
        p.c.session_id == session_id,
        p.c.state.in_([InputState.PENDING, InputState.PENDING_ACTIVE]),
    )
    has_batch = exists().where(
        q.c.session_id == session_id,
        q.c.state == QueueState.READY,
        q.c.available_at <= now,
    )
    return bool(conn.execute(select(or_(has_input, has_batch))).scalar())
