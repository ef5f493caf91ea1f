"""Turn bookkeeping across lease generations: re-stamping the active turn's claims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from lash_tasks.errors import ConflictError
from lash_tasks.machine import ActiveTurn, Fence
from lash_tasks.machine.ids import derive_turn_id
from lash_tasks.store import schema as t
from lash_tasks.store.attempts import StepAttempt, start_step_attempt
from lash_tasks.store.base import SqlStoreBase, decode_active_turn, decode_input
from lash_tasks.store.records import InputState, PendingInput


class TurnsMixin(SqlStoreBase):
    def restamp_turn_claims(
        self, fence: Fence, input_claim_id: str | None, queue_claim_id: str | None
    ) -> StepAttempt:
        """Carry the active turn's claims into this lease generation, and count the start
        of another attempt at its current step.

        The turn is continuing durable work, not stealing it: its claims keep their ids
        and tokens, and only their generation moves to the new fencing token.
        """
        with self.tx() as conn:
            self.dialect.lock_session(conn, fence.session_id)
            self._check_fence(conn, fence, self.now_ms(conn))
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
                        q.c.state == "claimed",
                    )
                    .values(claim_generation=fence.fencing_token)
                )
            return attempt

    def has_waiting_work(self, session_id: str) -> bool:
        """Pending next-turn input or ready queued work (what a re-poke would find)."""
        with self.engine.connect() as conn:
            now = self.now_ms(conn)
            p, q = t.pending_inputs, t.queued_work
            has_input = conn.execute(
                select(p.c.enqueue_seq)
                .where(
                    p.c.session_id == session_id,
                    p.c.state.in_([InputState.PENDING, InputState.PENDING_ACTIVE]),
                )
                .limit(1)
            ).first()
            if has_input is not None:
                return True
            has_batch = conn.execute(
                select(q.c.enqueue_seq)
                .where(q.c.session_id == session_id, q.c.state == "ready", q.c.available_at <= now)
                .limit(1)
            ).first()
            return has_batch is not None

    def active_turn(self, session_id: str) -> ActiveTurn | None:
        with self.engine.connect() as conn:
            return decode_active_turn(self._active_turn_row(conn, session_id))

    def turn_result(self, session_id: str, turn_id: str) -> dict[str, Any] | None:
        """The stored result of a committed turn (its outcome), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.turn_commits.c.result).where(
                    t.turn_commits.c.session_id == session_id,
                    t.turn_commits.c.turn_id == turn_id,
                )
            ).first()
            return dict(row.result) if row is not None else None

    def accepted_turn_inputs(self, session_id: str, claim_id: str) -> list[PendingInput]:
        """Steer inputs the running turn accepted under `claim_id`, in enqueue order.

        Acceptance is its own transaction, so a step that dies before its commit leaves
        inputs accepted but not in the graph; the re-run step finds them here.
        """
        p = t.pending_inputs
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(p)
                .where(
                    p.c.session_id == session_id,
                    p.c.claim_id == claim_id,
                    p.c.state == InputState.ACCEPTED,
                )
                .order_by(p.c.enqueue_seq)
            )
            return [decode_input(r) for r in rows]

    def begin_turn(
        self,
        fence: Fence,
        kind: str,
        claimed_ids: Sequence[str],
        *,
        input_claim_id: str | None = None,
        queue_claim_id: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> ActiveTurn:
        """Record a new turn as active under `fence` (before its first step commits) and
        return it with its id, taken from the session's next turn number."""
        with self.tx() as conn:
            self.dialect.lock_session(conn, fence.session_id)
            now = self.now_ms(conn)
            self._check_fence(conn, fence, now)
            if self._active_turn_row(conn, fence.session_id) is not None:
                raise ConflictError(
                    f"session {fence.session_id!r} already has an active turn",
                    session_id=fence.session_id,
                )
            session = self._require_session(conn, fence.session_id)
            turn_seq = int(session.turn_seq) + 1
            conn.execute(
                update(t.sessions)
                .where(t.sessions.c.session_id == fence.session_id)
                .values(turn_seq=turn_seq)
            )
            turn = ActiveTurn(
                turn_id=derive_turn_id(
                    kind, claimed_ids, turn_seq=turn_seq, session_created_at=session.created_at
                ),
                step_index=0,
                input_claim_id=input_claim_id,
                queue_claim_id=queue_claim_id,
                state=dict(state or {}),
            )
            conn.execute(
                insert(t.active_turns).values(
                    session_id=fence.session_id,
                    turn_id=turn.turn_id,
                    step_index=0,
                    input_claim_id=input_claim_id,
                    queue_claim_id=queue_claim_id,
                    cancel_requested=False,
                    state=turn.state,
                    started_at=now,
                    attempts=1,  # the step beginning the turn is its first attempt
                )
            )
            return turn
