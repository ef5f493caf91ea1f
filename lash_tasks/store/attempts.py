"""The active turn's step bookkeeping: its cancel flag, as a running step polls it."""

from __future__ import annotations

from sqlalchemy import select

from lash_tasks.store import schema as t
from lash_tasks.store.base import SqlStoreBase

_at = t.active_turns


class AttemptsMixin(SqlStoreBase):
    def cancel_requested(self, session_id: str, turn_id: str) -> bool:
        """True once an interrupt was requested for the running turn `turn_id`."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_at.c.cancel_requested).where(
                    _at.c.session_id == session_id, _at.c.turn_id == turn_id
                )
            ).first()
            return bool(row is not None and row.cancel_requested)
