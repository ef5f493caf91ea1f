"""`Inputs`: pending turn input — enqueue idempotently, cancel with typed outcomes, claim
under a fence (see `claiming` for when a claim is live)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, insert, or_, select, update

from lash_tasks.errors import (
    InputIdConflict,
    SourceKeyConflict,
    UnknownBranchPoint,
    ValidationError,
)
from lash_tasks.machine import Fence, stable_hash
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.claiming import ClaimTable, live_claim_filter, take
from lash_tasks.store.database import Database
from lash_tasks.store.manifest import hold_input_attachments, input_attachment_ids
from lash_tasks.store.records import CancelOutcome, InputClaim, InputDraft, InputState, PendingInput
from lash_tasks.store.rows import decode_input

MAX_INPUTS_PER_TURN = 64
_p = t.pending_inputs
INPUT_CLAIMS = ClaimTable(_p, "enqueue_seq", InputState.CLAIMED, "input_claim_id", "tic")


class Inputs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, draft: InputDraft) -> PendingInput:
        """Record one submission. Same source key + same content → the existing record."""
        check_session_id(draft.session_id)
        if not draft.source_key:
            raise ValidationError("source_key must not be empty")
        if draft.ingress not in ("next_turn", "active_turn"):
            raise ValidationError(f"unknown ingress {draft.ingress!r}")
        attachments = input_attachment_ids(draft.input)
        content_hash = stable_hash({"ingress": draft.ingress, "input": draft.input})
        with self.db.tx() as conn:
            self.db.lock_session(conn, draft.session_id)
            self.db.require_session(conn, draft.session_id)
            existing = conn.execute(
                select(_p).where(
                    _p.c.session_id == draft.session_id, _p.c.source_key == draft.source_key
                )
            ).first()
            if existing is not None:
                if existing.content_hash != content_hash:
                    raise SourceKeyConflict(
                        f"source key {draft.source_key!r} was already used for different input",
                        session_id=draft.session_id,
                        source_key=draft.source_key,
                    )
                return decode_input(existing)
            _check_branch_point(conn, draft)
            input_id = draft.input_id or "in_" + uuid.uuid4().hex
            taken = conn.execute(
                select(_p.c.source_key).where(
                    _p.c.session_id == draft.session_id, _p.c.input_id == input_id
                )
            ).first()
            if taken is not None:
                raise InputIdConflict(
                    f"input id {input_id!r} already names another input of session "
                    f"{draft.session_id!r} (source key {taken.source_key!r})",
                    session_id=draft.session_id,
                    input_id=input_id,
                )
            now = self.db.now_ms(conn)
            state = (
                InputState.PENDING_ACTIVE if draft.ingress == "active_turn" else InputState.PENDING
            )
            hold_input_attachments(
                conn, self.db.dialect, draft.session_id, input_id, attachments, now
            )
            conn.execute(
                insert(_p).values(
                    input_id=input_id,
                    session_id=draft.session_id,
                    source_key=draft.source_key,
                    ingress=draft.ingress,
                    state=state.value,
                    input=draft.input,
                    content_hash=content_hash,
                    enqueued_at=now,
                    updated_at=now,
                )
            )
            row = conn.execute(
                select(_p).where(_p.c.session_id == draft.session_id, _p.c.input_id == input_id)
            ).one()
            return decode_input(row)

    def get(self, session_id: str, input_id: str) -> PendingInput | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(_p).where(_p.c.session_id == session_id, _p.c.input_id == input_id)
            ).first()
            return decode_input(row) if row is not None else None

    def list_all(self, session_id: str) -> list[PendingInput]:
        """Every input row of the session (terminal ones too, until vacuum), in order."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_p).where(_p.c.session_id == session_id).order_by(_p.c.enqueue_seq)
            )
            return [decode_input(r) for r in rows]

    def list_pending(self, session_id: str) -> list[PendingInput]:
        """Inputs still waiting: hides terminal rows and rows under a live claim."""
        check_session_id(session_id)
        with self.db.read() as conn, conn.begin():
            live = self._live_claim_filter(conn, session_id)
            rows = conn.execute(
                select(_p)
                .where(
                    _p.c.session_id == session_id,
                    _p.c.state.in_(
                        [InputState.PENDING, InputState.PENDING_ACTIVE, InputState.CLAIMED]
                    ),
                    ~live,
                )
                .order_by(_p.c.enqueue_seq)
            )
            return [decode_input(r) for r in rows]

    def cancel(
        self, session_id: str, *, input_id: str | None = None, source_key: str | None = None
    ) -> CancelOutcome:
        """Cancel one input by id or source key, with a typed outcome."""
        if (input_id is None) == (source_key is None):
            raise ValidationError("cancelling an input needs exactly one of input_id or source_key")
        check_session_id(session_id)
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            cond = (
                _p.c.input_id == input_id if input_id is not None else _p.c.source_key == source_key
            )
            row = conn.execute(select(_p).where(_p.c.session_id == session_id, cond)).first()
            if row is None:
                return CancelOutcome.NOT_FOUND
            return self._cancel_rows(conn, session_id, [row.enqueue_seq])[0]

    def cancel_many(self, session_id: str, input_ids: Sequence[str]) -> dict[str, CancelOutcome]:
        """Cancel several inputs in one transaction; outcome per id."""
        check_session_id(session_id)
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            rows = {
                r.input_id: r.enqueue_seq
                for r in conn.execute(
                    select(_p.c.input_id, _p.c.enqueue_seq).where(
                        _p.c.session_id == session_id, _p.c.input_id.in_(list(input_ids))
                    )
                )
            }
            found = [i for i in input_ids if i in rows]
            outcomes = self._cancel_rows(conn, session_id, [rows[i] for i in found])
            result = dict(zip(found, outcomes, strict=True))
            return {i: result.get(i, CancelOutcome.NOT_FOUND) for i in input_ids}

    def cancel_suffix(self, session_id: str, anchor_input_id: str) -> dict[str, CancelOutcome]:
        """Cancel the anchor input and every later one of the session, atomically."""
        check_session_id(session_id)
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            anchor = conn.execute(
                select(_p.c.enqueue_seq).where(
                    _p.c.session_id == session_id, _p.c.input_id == anchor_input_id
                )
            ).first()
            if anchor is None:
                return {anchor_input_id: CancelOutcome.NOT_FOUND}
            rows = conn.execute(
                select(_p.c.input_id, _p.c.enqueue_seq)
                .where(_p.c.session_id == session_id, _p.c.enqueue_seq >= anchor.enqueue_seq)
                .order_by(_p.c.enqueue_seq)
            ).all()
            outcomes = self._cancel_rows(conn, session_id, [r.enqueue_seq for r in rows])
            return {r.input_id: o for r, o in zip(rows, outcomes, strict=True)}

    def claim_next_turn(
        self, fence: Fence, max_inputs: int = MAX_INPUTS_PER_TURN
    ) -> InputClaim | None:
        """Claim the next turn's inputs under `fence`, in enqueue order.

        Inputs of a claim whose owner died are re-claimed as the same set first, so the
        re-run turn keeps its identity and replays its journaled effects.
        """
        with self.db.tx() as conn:
            self.db.lock_session(conn, fence.session_id)
            now = self.db.now_ms(conn)
            self.db.check_fence(conn, fence, now)
            return claim_next_turn_in(self.db, conn, fence, now, max_inputs)

    def accept_active(self, fence: Fence, claim_id: str, turn_id: str) -> list[PendingInput]:
        """At a step boundary, take steer inputs into the running turn's claim."""
        with self.db.tx() as conn:
            self.db.lock_session(conn, fence.session_id)
            now = self.db.now_ms(conn)
            self.db.check_fence(conn, fence, now)
            return accept_active_in(conn, fence, claim_id, turn_id, now)

    def abandon_claim(self, fence: Fence, claim_id: str) -> int:
        """Give claimed inputs back (state pending), e.g. when a step gives up before running."""
        with self.db.tx() as conn:
            result = conn.execute(
                update(_p)
                .where(
                    _p.c.session_id == fence.session_id,
                    _p.c.claim_id == claim_id,
                    _p.c.claim_generation == fence.fencing_token,
                    _p.c.state.in_([InputState.CLAIMED, InputState.ACCEPTED]),
                )
                .values(
                    state=InputState.PENDING,
                    claim_id=None,
                    claim_token=None,
                    claim_generation=None,
                    updated_at=self.db.now_ms(conn),
                )
            )
            return int(result.rowcount)

    def accepted(self, session_id: str, claim_id: str) -> list[PendingInput]:
        """Steer inputs the running turn accepted under `claim_id`, in enqueue order.

        Acceptance is its own transaction, so a step that dies before its commit leaves
        inputs accepted but not in the graph; the re-run step finds them here.
        """
        with self.db.read() as conn:
            return accepted_in(conn, session_id, claim_id)

    def _live_claim_filter(self, conn: Connection, session_id: str) -> ColumnElement[bool]:
        # Reads the clock once more, as the transactions around it did before the store
        # was split into parts; the step transactions of issue 9 fold it away.
        return live_claim_filter(self.db, conn, INPUT_CLAIMS, session_id, self.db.now_ms(conn))

    def _cancel_rows(
        self, conn: Connection, session_id: str, seqs: Sequence[int]
    ) -> list[CancelOutcome]:
        if not seqs:
            return []
        live = self._live_claim_filter(conn, session_id)
        rows = {
            r.enqueue_seq: r
            for r in conn.execute(
                select(_p.c.enqueue_seq, _p.c.state, live.label("live")).where(
                    _p.c.enqueue_seq.in_(list(seqs))
                )
            )
        }
        outcomes: list[CancelOutcome] = []
        to_cancel: list[int] = []
        for seq in seqs:
            row: Any = rows[seq]
            if row.state == InputState.COMPLETED:
                outcomes.append(CancelOutcome.ALREADY_COMPLETED)
            elif row.state == InputState.CANCELLED:
                outcomes.append(CancelOutcome.ALREADY_CANCELLED)
            elif row.state == InputState.ACCEPTED or (row.state == InputState.CLAIMED and row.live):
                outcomes.append(CancelOutcome.ALREADY_CLAIMED)
            else:
                outcomes.append(CancelOutcome.CANCELLED)
                to_cancel.append(seq)
        if to_cancel:
            conn.execute(
                update(_p)
                .where(_p.c.enqueue_seq.in_(to_cancel))
                .values(
                    state=InputState.CANCELLED,
                    claim_id=None,
                    claim_token=None,
                    claim_generation=None,
                    updated_at=self.db.now_ms(conn),
                )
            )
        return outcomes


def _check_branch_point(conn: Connection, draft: InputDraft) -> None:
    """A turn branches from a live node of its own session, or it is refused here: accepted,
    it would only stop with `runtime_error` later, its text left in the model's context."""
    branch = draft.input.get("branch_from")
    if branch is None:
        return
    n = t.graph_nodes
    found = conn.execute(
        select(n.c.node_id).where(
            n.c.session_id == draft.session_id,
            n.c.node_id == str(branch),
            n.c.tombstoned_at.is_(None),
        )
    ).first()
    if found is None:
        raise UnknownBranchPoint(
            f"branch_from: session {draft.session_id!r} has no node {branch!r}",
            field="branch_from",
            node_id=str(branch),
        )


def claim_next_turn_in(
    db: Database,
    conn: Connection,
    fence: Fence,
    now: int,
    max_inputs: int = MAX_INPUTS_PER_TURN,
    live: ColumnElement[bool] | None = None,
) -> InputClaim | None:
    """`Inputs.claim_next_turn` inside the caller's transaction, which holds the session
    lock and whose fence is known to hold the lease. `live`: the live-claim filter, when
    the caller knows it."""
    if live is None:
        live = live_claim_filter(db, conn, INPUT_CLAIMS, fence.session_id, now)
    # No turn is running (the caller resumes an active turn instead of claiming), so a
    # steer input that found no turn to join starts the next one.
    waiting = [InputState.PENDING, InputState.PENDING_ACTIVE]
    # One read in the usual case: the first inputs that wait or sit under a dead claim.
    # Only when that finds a dead claim (or fills the limit, so one may lie beyond) does
    # the dead claim's own set need reading: it is taken again as exactly that set, ahead
    # of anything pending, so that its turn keeps its identity.
    rows = conn.execute(
        db.dialect.for_update(
            select(_p)
            .where(
                _p.c.session_id == fence.session_id,
                or_(_p.c.state.in_(waiting), and_(_p.c.state == InputState.CLAIMED, ~live)),
            )
            .order_by(_p.c.enqueue_seq)
            .limit(max_inputs),
            skip_locked=True,
        )
    ).all()
    if any(r.state == InputState.CLAIMED for r in rows) or len(rows) == max_inputs:
        stale = conn.execute(
            select(_p.c.claim_id)
            .where(
                _p.c.session_id == fence.session_id,
                _p.c.state == InputState.CLAIMED,
                ~live,
            )
            .order_by(_p.c.enqueue_seq)
            .limit(1)
        ).first()
        if stale is not None:
            rows = conn.execute(
                db.dialect.for_update(
                    select(_p)
                    .where(
                        _p.c.session_id == fence.session_id,
                        _p.c.claim_id == stale.claim_id,
                        _p.c.state == InputState.CLAIMED,
                    )
                    .order_by(_p.c.enqueue_seq)
                    .limit(max_inputs),
                    skip_locked=True,
                )
            ).all()
    if not rows:
        return None
    claim = take(conn, INPUT_CLAIMS, fence, [r.enqueue_seq for r in rows], updated_at=now)
    # The rows as the claim left them, without reading them again.
    claimed = tuple(
        replace(
            decode_input(r),
            state=str(INPUT_CLAIMS.claimed_state),
            claim_id=claim.claim_id,
            updated_at=now,
        )
        for r in rows
    )
    return InputClaim(claim.claim_id, claim.claim_token, claim.generation, claimed)


def accept_active_in(
    conn: Connection, fence: Fence, claim_id: str, turn_id: str, now: int
) -> list[PendingInput]:
    """`Inputs.accept_active` inside the caller's transaction (session locked, fence held)."""
    token_row = conn.execute(
        select(_p.c.claim_token)
        .where(_p.c.session_id == fence.session_id, _p.c.claim_id == claim_id)
        .limit(1)
    ).first()
    if token_row is None:
        return []
    rows = conn.execute(
        select(_p)
        .where(_p.c.session_id == fence.session_id, _p.c.state == InputState.PENDING_ACTIVE)
        .order_by(_p.c.enqueue_seq)
    ).all()
    if not rows:
        return []
    conn.execute(
        update(_p)
        .where(_p.c.enqueue_seq.in_([r.enqueue_seq for r in rows]))
        .values(
            state=InputState.ACCEPTED,
            claim_id=claim_id,
            claim_token=token_row.claim_token,
            claim_generation=fence.fencing_token,
            turn_id=turn_id,
            updated_at=now,
        )
    )
    return [decode_input(r) for r in rows]


def accepted_in(conn: Connection, session_id: str, claim_id: str) -> list[PendingInput]:
    """Steer inputs accepted under `claim_id`, in enqueue order, on the caller's connection."""
    rows = conn.execute(
        select(_p)
        .where(
            _p.c.session_id == session_id,
            _p.c.claim_id == claim_id,
            _p.c.state == InputState.ACCEPTED,
        )
        .order_by(_p.c.enqueue_seq)
    )
    return [decode_input(r) for r in rows]
