"""Queued work: background batches for a session (session commands, process wakes)."""

from __future__ import annotations

import hashlib
import uuid
from itertools import takewhile
from typing import Any

from sqlalchemy import Connection, and_, delete, false, insert, or_, select, update

from lash_tasks.errors import SourceKeyConflict, ValidationError
from lash_tasks.machine import Fence, QueuedWorkDraft, stable_hash
from lash_tasks.machine.claims import Candidate, select_leading_command, select_turn_work_prefix
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.base import SqlStoreBase, decode_batch
from lash_tasks.store.records import QueueClaim, QueuedBatch

_q = t.queued_work
_items = t.queued_work_items
_SCAN_SURPLUS = 32


class QueuedWorkMixin(SqlStoreBase):
    def enqueue_queued_work(self, session_id: str, draft: QueuedWorkDraft) -> QueuedBatch:
        """Enqueue a batch; the same source key with the same content returns the existing one."""
        check_session_id(session_id)
        with self.tx() as conn:
            self.dialect.lock_session(conn, session_id)
            self._require_session(conn, session_id)
            return self._enqueue_batch(conn, session_id, draft, self.now_ms(conn))

    def list_queued_work(self, session_id: str, include_done: bool = False) -> list[QueuedBatch]:
        with self.engine.connect() as conn:
            query = select(_q).where(_q.c.session_id == session_id)
            if not include_done:
                query = query.where(_q.c.state.in_(["ready", "claimed"]))
            rows = conn.execute(query.order_by(_q.c.enqueue_seq)).all()
            return [decode_batch(r, self._payloads(conn, r.batch_id)) for r in rows]

    def claim_leading_command(self, fence: Fence) -> QueueClaim | None:
        """Claim the head batch iff it is a session command."""
        return self._claim(fence, lambda c: select_leading_command(c), 1)

    def claim_turn_work(self, fence: Fence, max_batches: int = 64) -> QueueClaim | None:
        """Claim ready turn work at the head of the queue; nothing while a command leads."""
        return self._claim(fence, lambda c: select_turn_work_prefix(c, max_batches), max_batches)

    def cancel_queued_work(self, session_id: str, batch_id: str) -> bool:
        """Cancel a batch only if nobody holds a live claim on it."""
        with self.tx() as conn:
            self.dialect.lock_session(conn, session_id)
            now = self.now_ms(conn)
            live = self._live_queue_filter(conn, session_id, now)
            result = conn.execute(
                update(_q)
                .where(
                    _q.c.session_id == session_id,
                    _q.c.batch_id == batch_id,
                    or_(_q.c.state == "ready", and_(_q.c.state == "claimed", ~live)),
                )
                .values(state="cancelled", claim_id=None, claim_token=None)
            )
            return result.rowcount > 0

    def _claim(self, fence: Fence, rule: Any, max_batches: int) -> QueueClaim | None:
        with self.tx() as conn:
            self.dialect.lock_session(conn, fence.session_id)
            now = self.now_ms(conn)
            self._check_fence(conn, fence, now)
            live = self._live_queue_filter(conn, fence.session_id, now)
            query = (
                select(_q)
                .where(
                    _q.c.session_id == fence.session_id,
                    or_(_q.c.state == "ready", and_(_q.c.state == "claimed", ~live)),
                    _q.c.available_at <= now,
                )
                .order_by(_q.c.enqueue_seq)
                .limit(max_batches + _SCAN_SURPLUS)
            )
            rows = conn.execute(self.dialect.for_update(query, skip_locked=True)).all()
            count = rule([Candidate(r.work_class, r.slot_policy, r.merge_key) for r in rows])
            if count == 0:
                return None
            chosen = rows[:count]
            if chosen[0].state == "claimed":
                # A dead generation's claim is taken again as exactly the same set, so the
                # re-run turn keeps its identity (turn ids derive from the claimed batch ids).
                stale_id = chosen[0].claim_id
                chosen = list(takewhile(lambda r: r.claim_id == stale_id, chosen))
            claim_token = uuid.uuid4().hex
            # Not built from enqueue_seq: SQLite reuses a vacuumed rowid.
            claim_id = f"qwc:{fence.fencing_token}:{uuid.uuid4().hex[:16]}"
            conn.execute(
                update(_q)
                .where(_q.c.batch_id.in_([r.batch_id for r in chosen]))
                .values(
                    state="claimed",
                    claim_id=claim_id,
                    claim_token=claim_token,
                    claim_generation=fence.fencing_token,
                )
            )
            batches = tuple(decode_batch(r, self._payloads(conn, r.batch_id)) for r in chosen)
            return QueueClaim(claim_id, claim_token, fence.fencing_token, batches)

    def _live_queue_filter(self, conn: Connection, session_id: str, now: int) -> Any:
        generation = self._live_generation(conn, session_id, now)
        active = self._active_turn_row(conn, session_id)
        clauses = []
        if generation is not None:
            clauses.append(_q.c.claim_generation == generation)
        if active is not None and active.queue_claim_id is not None:
            clauses.append(_q.c.claim_id == active.queue_claim_id)
        if not clauses:
            return false()
        return or_(*clauses)

    def _payloads(self, conn: Connection, batch_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(_items.c.payload)
            .where(_items.c.batch_id == batch_id)
            .order_by(_items.c.item_index)
        )
        return [dict(r.payload) for r in rows]

    def _enqueue_batch(
        self, conn: Connection, session_id: str, draft: QueuedWorkDraft, now: int
    ) -> QueuedBatch:
        if not draft.source_key:
            raise ValidationError("queued work needs a source_key")
        if draft.work_class not in ("session_command", "turn_work"):
            raise ValidationError(f"unknown queued work class {draft.work_class!r}")
        if draft.slot_policy not in ("exclusive", "join"):
            raise ValidationError(f"unknown slot policy {draft.slot_policy!r}")
        if not draft.payloads:
            raise ValidationError("queued work needs at least one payload")
        content_hash = stable_hash(
            {
                "class": draft.work_class,
                "slot": draft.slot_policy,
                "merge": draft.merge_key,
                "payloads": list(draft.payloads),
            }
        )
        existing = conn.execute(
            select(_q).where(_q.c.session_id == session_id, _q.c.source_key == draft.source_key)
        ).first()
        if existing is not None:
            if existing.content_hash != content_hash:
                raise SourceKeyConflict(
                    f"queued work source key {draft.source_key!r} was already used for "
                    "different work",
                    session_id=session_id,
                    source_key=draft.source_key,
                )
            return decode_batch(existing, self._payloads(conn, existing.batch_id))
        digest = hashlib.sha256(f"{session_id}:{draft.source_key}".encode()).hexdigest()[:32]
        batch_id = "qwb:" + digest
        conn.execute(
            insert(_q).values(
                batch_id=batch_id,
                session_id=session_id,
                source_key=draft.source_key,
                work_class=draft.work_class,
                slot_policy=draft.slot_policy,
                merge_key=draft.merge_key,
                content_hash=content_hash,
                state="ready",
                available_at=now + max(0, draft.delay_ms),
                enqueued_at=now,
            )
        )
        for index, payload in enumerate(draft.payloads):
            conn.execute(
                insert(_items).values(batch_id=batch_id, item_index=index, payload=payload)
            )
        row = conn.execute(select(_q).where(_q.c.batch_id == batch_id)).one()
        return decode_batch(row, list(draft.payloads))

    def _delete_batches(self, conn: Connection, batch_ids: list[str]) -> None:
        conn.execute(delete(_items).where(_items.c.batch_id.in_(batch_ids)))
        conn.execute(delete(_q).where(_q.c.batch_id.in_(batch_ids)))
