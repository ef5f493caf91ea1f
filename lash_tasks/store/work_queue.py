"""`WorkQueue`: background batches for a session (session commands, process wakes).

A batch is claimed by the turn it opens, or — delivered at the earliest safe boundary — by
a turn already running, at its next step (`take_boundary_work_in`): then the batch joins the
turn's queue claim and names the turn in `turn_id`, and the turn's final commit settles it
with the rest of the claim.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from enum import StrEnum
from itertools import takewhile
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, insert, or_, select, update

from lash_tasks.errors import SourceKeyConflict, ValidationError
from lash_tasks.machine import ClaimRef, Fence, QueuedWorkDraft, TurnState, stable_hash
from lash_tasks.machine.claims import (
    Candidate,
    select_boundary_work_prefix,
    select_leading_command,
    select_turn_work_prefix,
)
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.claiming import ClaimTable, live_claim_filter, take
from lash_tasks.store.database import Database
from lash_tasks.store.records import QueueClaim, QueuedBatch
from lash_tasks.store.rows import decode_batch, encode_turn_state


class QueueState(StrEnum):
    READY = "ready"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


OPEN_QUEUE_STATES = (QueueState.READY, QueueState.CLAIMED)
DELIVERY_POLICIES = ("after_current_turn", "earliest_safe_boundary")
DONE_QUEUE_STATES = (QueueState.COMPLETED, QueueState.CANCELLED)

_q = t.queued_work
_items = t.queued_work_items
_SCAN_SURPLUS = 32
MAX_BOUNDARY_BATCHES = 64
QUEUE_CLAIMS = ClaimTable(_q, "batch_id", QueueState.CLAIMED, "queue_claim_id", "qwc")


class WorkQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, session_id: str, draft: QueuedWorkDraft) -> QueuedBatch:
        """Enqueue a batch; the same source key with the same content returns the existing one."""
        check_session_id(session_id)
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            self.db.require_session(conn, session_id)
            return enqueue_batch(conn, session_id, draft, self.db.now_ms(conn))

    def list_batches(self, session_id: str, include_done: bool = False) -> list[QueuedBatch]:
        with self.db.read() as conn:
            query = select(_q).where(_q.c.session_id == session_id)
            if not include_done:
                query = query.where(_q.c.state.in_(OPEN_QUEUE_STATES))
            rows = conn.execute(query.order_by(_q.c.enqueue_seq)).all()
            return [decode_batch(r, _payloads(conn, r.batch_id)) for r in rows]

    def claim_leading_command(self, fence: Fence) -> QueueClaim | None:
        """Claim the head batch iff it is a session command."""
        return self._claim(fence, lambda c: select_leading_command(c), 1)

    def claim_turn_work(self, fence: Fence, max_batches: int = 64) -> QueueClaim | None:
        """Claim ready turn work at the head of the queue; nothing while a command leads."""
        return self._claim(fence, lambda c: select_turn_work_prefix(c, max_batches), max_batches)

    def cancel(self, session_id: str, batch_id: str) -> bool:
        """Cancel a batch only if nobody holds a live claim on it."""
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            now = self.db.now_ms(conn)
            result = conn.execute(
                update(_q)
                .where(
                    _q.c.session_id == session_id,
                    _q.c.batch_id == batch_id,
                    self._claimable(conn, session_id, now),
                )
                .values(state=QueueState.CANCELLED, claim_id=None, claim_token=None)
            )
            return result.rowcount > 0

    def _claim(self, fence: Fence, rule: Any, max_batches: int) -> QueueClaim | None:
        with self.db.tx() as conn:
            self.db.lock_session(conn, fence.session_id)
            now = self.db.now_ms(conn)
            self.db.check_fence(conn, fence, now)
            return claim_in(self.db, conn, fence, now, rule, max_batches)

    def _claimable(self, conn: Connection, session_id: str, now: int) -> ColumnElement[bool]:
        return claimable(self.db, conn, session_id, now)


def _payloads(conn: Connection, batch_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(_items.c.payload).where(_items.c.batch_id == batch_id).order_by(_items.c.item_index)
    )
    return [dict(r.payload) for r in rows]


def enqueue_batch(
    conn: Connection, session_id: str, draft: QueuedWorkDraft, now: int
) -> QueuedBatch:
    """Insert one batch inside the caller's transaction (an enqueue, or a commit's outbox);
    the same source key with the same content returns the existing batch."""
    if not draft.source_key:
        raise ValidationError("queued work needs a source_key")
    if draft.work_class not in ("session_command", "turn_work"):
        raise ValidationError(f"unknown queued work class {draft.work_class!r}")
    if draft.slot_policy not in ("exclusive", "join"):
        raise ValidationError(f"unknown slot policy {draft.slot_policy!r}")
    if not draft.payloads:
        raise ValidationError("queued work needs at least one payload")
    if draft.delivery_policy not in DELIVERY_POLICIES:
        raise ValidationError(f"unknown delivery policy {draft.delivery_policy!r}")
    content: dict[str, Any] = {
        "class": draft.work_class,
        "slot": draft.slot_policy,
        "merge": draft.merge_key,
        "payloads": list(draft.payloads),
    }
    if draft.delivery_policy != "after_current_turn":  # older batches keep their hashes
        content["delivery"] = draft.delivery_policy
    content_hash = stable_hash(content)
    existing = conn.execute(
        select(_q).where(_q.c.session_id == session_id, _q.c.source_key == draft.source_key)
    ).first()
    if existing is not None:
        if existing.content_hash != content_hash:
            raise SourceKeyConflict(
                f"queued work source key {draft.source_key!r} was already used for different work",
                session_id=session_id,
                source_key=draft.source_key,
            )
        return decode_batch(existing, _payloads(conn, existing.batch_id))
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
            state=QueueState.READY,
            available_at=now + max(0, draft.delay_ms),
            enqueued_at=now,
            delivery_policy=draft.delivery_policy,
        )
    )
    for index, payload in enumerate(draft.payloads):
        conn.execute(insert(_items).values(batch_id=batch_id, item_index=index, payload=payload))
    row = conn.execute(select(_q).where(_q.c.batch_id == batch_id)).one()
    return decode_batch(row, list(draft.payloads))


def _payloads_of(conn: Connection, batch_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The payloads of several batches in one statement, each batch's in item order."""
    found: dict[str, list[dict[str, Any]]] = {b: [] for b in batch_ids}
    if batch_ids:
        rows = conn.execute(
            select(_items.c.batch_id, _items.c.payload)
            .where(_items.c.batch_id.in_(batch_ids))
            .order_by(_items.c.batch_id, _items.c.item_index)
        )
        for row in rows:
            found[row.batch_id].append(dict(row.payload))
    return found


def claim_in(
    db: Database,
    conn: Connection,
    fence: Fence,
    now: int,
    rule: Any,
    max_batches: int,
    live: ColumnElement[bool] | None = None,
) -> QueueClaim | None:
    """Claim the leading batches `rule` picks, inside the caller's transaction (session
    locked, fence held). `live`: the live-claim filter, when the caller knows it."""
    if live is None:
        live = live_claim_filter(db, conn, QUEUE_CLAIMS, fence.session_id, now)
    query = (
        select(_q)
        .where(
            _q.c.session_id == fence.session_id,
            _claimable(live),
            _q.c.available_at <= now,
        )
        .order_by(_q.c.enqueue_seq)
        .limit(max_batches + _SCAN_SURPLUS)
    )
    rows = conn.execute(db.dialect.for_update(query, skip_locked=True)).all()
    count = rule(
        [Candidate(r.work_class, r.slot_policy, r.merge_key, r.delivery_policy) for r in rows]
    )
    if count == 0:
        return None
    chosen = rows[:count]
    if chosen[0].state == QueueState.CLAIMED:
        # A dead generation's claim is taken again as exactly the same set, so the
        # re-run turn keeps its identity (turn ids derive from the claimed batch ids).
        stale_id = chosen[0].claim_id
        chosen = list(takewhile(lambda r: r.claim_id == stale_id, chosen))
    claim = take(conn, QUEUE_CLAIMS, fence, [r.batch_id for r in chosen])
    batches = tuple(decode_batch(r, _payloads(conn, r.batch_id)) for r in chosen)
    return QueueClaim(claim.claim_id, claim.claim_token, claim.generation, batches)


def claimable(db: Database, conn: Connection, session_id: str, now: int) -> ColumnElement[bool]:
    """SQL: the batch is ready, or claimed by a generation that is no longer live."""
    return _claimable(live_claim_filter(db, conn, QUEUE_CLAIMS, session_id, now))


def _claimable(live: ColumnElement[bool]) -> ColumnElement[bool]:
    return or_(_q.c.state == QueueState.READY, and_(_q.c.state == QueueState.CLAIMED, ~live))


def take_boundary_work_in(
    db: Database,
    conn: Connection,
    fence: Fence,
    turn: TurnState,
    now: int,
    *,
    accept: bool,
    max_batches: int = MAX_BOUNDARY_BATCHES,
) -> tuple[TurnState, tuple[QueuedBatch, ...], tuple[str, ...]]:
    """At a step boundary of the running `turn` (session locked, fence held, the turn's
    claims re-stamped): with `accept`, take the ready work that may join it
    (`select_boundary_work_prefix`) under the turn's queue claim — a new claim when the turn
    has none yet, recorded on its active-turn row so the claim stays live and a re-run step
    finds it. Returns the turn, every batch it took at a boundary so far (in enqueue order),
    and the ids of those taken now."""
    taken = _boundary_rows(conn, fence.session_id, turn)
    chosen: list[Row[Any]] = []
    if accept:
        query = (
            select(_q)
            .where(
                _q.c.session_id == fence.session_id,
                _q.c.state == QueueState.READY,
                _q.c.available_at <= now,
            )
            .order_by(_q.c.enqueue_seq)
            .limit(max_batches + _SCAN_SURPLUS)
        )
        rows = conn.execute(db.dialect.for_update(query, skip_locked=True)).all()
        candidates = [
            Candidate(r.work_class, r.slot_policy, r.merge_key, r.delivery_policy) for r in rows
        ]
        chosen = list(rows[: select_boundary_work_prefix(candidates, max_batches)])
    if chosen:
        turn = _join_turn_claim(conn, fence, turn, [r.batch_id for r in chosen])
    rows_of_turn = [*taken, *chosen]
    payloads = _payloads_of(conn, [r.batch_id for r in rows_of_turn])
    batches = tuple(decode_batch(r, payloads[r.batch_id]) for r in rows_of_turn)
    return turn, batches, tuple(r.batch_id for r in chosen)


def _boundary_rows(conn: Connection, session_id: str, turn: TurnState) -> list[Row[Any]]:
    """The batches `turn` took at its step boundaries so far (none without a queue claim)."""
    if turn.queue_claim is None:
        return []
    rows = conn.execute(
        select(_q)
        .where(
            _q.c.session_id == session_id,
            _q.c.claim_id == turn.queue_claim.claim_id,
            _q.c.state == QueueState.CLAIMED,
            _q.c.turn_id == turn.turn_id,
        )
        .order_by(_q.c.enqueue_seq)
    )
    return list(rows)


def _join_turn_claim(
    conn: Connection, fence: Fence, turn: TurnState, batch_ids: list[str]
) -> TurnState:
    """Stamp the batches with the turn's queue claim (a new one if it has none yet)."""
    if turn.queue_claim is None:
        claim = take(conn, QUEUE_CLAIMS, fence, batch_ids, turn_id=turn.turn_id)
        turn = replace(turn, queue_claim=ClaimRef(claim.claim_id, claim.claim_token))
        a = t.active_turns
        conn.execute(
            update(a)
            .where(a.c.session_id == fence.session_id, a.c.turn_id == turn.turn_id)
            .values(queue_claim_id=claim.claim_id, state=encode_turn_state(turn))
        )
        return turn
    conn.execute(
        update(_q)
        .where(_q.c.batch_id.in_(batch_ids))
        .values(
            state=QueueState.CLAIMED,
            claim_id=turn.queue_claim.claim_id,
            claim_token=turn.queue_claim.claim_token,
            claim_generation=fence.fencing_token,
            turn_id=turn.turn_id,
        )
    )
    return turn
