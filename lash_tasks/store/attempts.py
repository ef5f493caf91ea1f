"""How often the active turn's current step was started, why it last failed, and its
cancel flag: what bounds a step that keeps failing the same way.

A step's attempt is counted when it starts (so a worker killed mid-step counts too) and the
count is reset by the commit that ends the step. A step that only found another worker in
its way takes its attempt back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from lash_tasks.machine import Fence
from lash_tasks.store import schema as t
from lash_tasks.store.base import SqlStoreBase

_at = t.active_turns
ERROR_TEXT_LIMIT = 1000


@dataclass(frozen=True)
class StepAttempt:
    """The attempt a step is making (1 = first) and the last failure recorded before it."""

    number: int
    last_error: dict[str, Any] | None = None


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


class AttemptsMixin(SqlStoreBase):
    def record_step_failure(self, fence: Fence, turn_id: str, error: dict[str, Any]) -> None:
        """Remember why the running step of `turn_id` failed; refused without the lease."""
        message = str(error.get("message", ""))[:ERROR_TEXT_LIMIT]
        with self.tx() as conn:
            self.dialect.lock_session(conn, fence.session_id)
            self._check_fence(conn, fence, self.now_ms(conn))
            conn.execute(
                update(_at)
                .where(_at.c.session_id == fence.session_id, _at.c.turn_id == turn_id)
                .values(last_error={"code": str(error.get("code", "error")), "message": message})
            )

    def forgive_step_attempt(self, session_id: str, turn_id: str, step_index: int) -> None:
        """Take back the attempt of a step that was merely in another worker's way.

        Guarded by turn and step: a late call never discounts a later step's attempts.
        """
        with self.tx() as conn:
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

    def cancel_requested(self, session_id: str, turn_id: str) -> bool:
        """True once an interrupt was requested for the running turn `turn_id`."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_at.c.cancel_requested).where(
                    _at.c.session_id == session_id, _at.c.turn_id == turn_id
                )
            ).first()
            return bool(row is not None and row.cancel_requested)

    def step_attempts(self, session_id: str) -> StepAttempt | None:
        """The active turn's attempt count and last failure (None without an active turn)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_at.c.attempts, _at.c.last_error).where(_at.c.session_id == session_id)
            ).first()
            return None if row is None else StepAttempt(int(row.attempts), row.last_error)
