"""The step's transactions (DESIGN §4.1): a turn step costs the database two of them.

open   lock the session; take or re-enter the lease; read the session and its active turn;
       read the active path unless the worker's rebuild cache holds this head revision;
       resume the turn (claims re-stamped to this lease, one more attempt counted, steer
       input and work queued for the earliest safe boundary accepted) or pick the work — a
       session command, the next inputs, queued turn work — and begin its turn; then let
       the caller's planner build the step's first effect (pure work) and prepare that
       effect's journal entry. Nothing to do releases the lease in the same transaction.
tools  only when the model asked for tools: record the LLM call's outcome and prepare every
       tool call's journal entry, so that no tool runs before the answer that asked for it
       is durable.
close  the fenced commit (see `commits.py`) with the effect outcomes the step still holds,
       the lease released or kept for the session's next step, and whether work waits.

Each reuses the parts' own transaction bodies (`*_in` functions), so the rules of a lease,
a claim, a turn or a journal entry live in one place whichever transaction applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Row, update

from lash_tasks.errors import LeaseLost, ReplayMismatch
from lash_tasks.machine import ClaimRef, Fence, TurnState
from lash_tasks.machine.claims import select_leading_command, select_turn_work_prefix
from lash_tasks.machine.ids import check_session_id, effect_scope_id, llm_replay_key
from lash_tasks.machine.policy import parse_policy
from lash_tasks.machine.protocol import (
    opening_for_inputs,
    opening_for_wakes,
    replies_for_inputs,
)
from lash_tasks.store import schema as t
from lash_tasks.store.claiming import live_claim_clause
from lash_tasks.store.commits import apply_commit
from lash_tasks.store.database import Database
from lash_tasks.store.inputs import (
    INPUT_CLAIMS,
    accept_active_in,
    accepted_in,
    claim_next_turn_in,
)
from lash_tasks.store.journal import finalize_in, prepare_in
from lash_tasks.store.leases import release_statement, take_lease
from lash_tasks.store.records import ActivePath, Busy, FullGraph, SessionRecord
from lash_tasks.store.rows import decode_active_turn, decode_session
from lash_tasks.store.sessions import load_graph_in
from lash_tasks.store.step_records import (
    ClosedStep,
    CloseRequest,
    EffectHolder,
    EffectOutcome,
    EffectSlot,
    JournalDecision,
    OpenedStep,
    OpenRequest,
    Planner,
)
from lash_tasks.store.turns import begin_in, restamp_in, waiting_in
from lash_tasks.store.work_queue import QUEUE_CLAIMS, claim_in, take_boundary_work_in

MAX_TURN_BATCHES = 64


class StepTransactions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self, request: OpenRequest, planner: Planner) -> OpenedStep | Busy:
        """Take the lease and the step's work in one transaction (see the module docstring).

        `ReplayMismatch` of the first effect is reported in `OpenedStep.mismatch` (the step
        must end its turn, which needs the lease this transaction takes); `EffectBusy`
        raises and changes nothing.
        """
        session_id = check_session_id(request.session_id)
        db = self.db
        with db.tx() as conn:
            now = db.lock_session_now(conn, session_id)
            head = db.read_head(conn, session_id, queue_flag=True)
            row = head.session
            record = self._configured(conn, row, request)
            lease = take_lease(
                conn,
                session_id,
                request.owner_id,
                request.incarnation_id,
                request.ttl_ms,
                now,
                lease_row=head.lease,
            )
            if isinstance(lease, Busy):
                return lease
            fence = lease.fence
            opened = OpenedStep(lease, record, None, "idle")
            active = decode_active_turn(head.active_turn)
            if active is not None:
                self._resume(conn, fence, active, opened, request, now)
            else:
                self._pick_work(conn, fence, row, opened, now, bool(head.has_queued_work))
            if opened.work == "idle":
                conn.execute(release_statement(fence))
                return opened
            self._load_graph(conn, opened, request.cached_revision)
            if opened.work == "turn" and request.effects is not None:
                slot = planner(opened)
                if slot is not None:
                    self._prepare_first(conn, opened, slot, request.effects, now)
            return opened

    def journal_tools(
        self,
        fence: Fence,
        llm: EffectOutcome | None,
        slots: Sequence[EffectSlot],
        effects: EffectHolder,
    ) -> list[JournalDecision]:
        """Record the LLM call's outcome and prepare the tool calls' journal entries, in one
        transaction. Refused (`LeaseLost`) once the step's fence no longer holds."""
        db = self.db
        with db.tx() as conn:
            now = db.lock_session_now(conn, fence.session_id)
            db.check_fence(conn, fence, now)
            if llm is not None:
                finalize_in(conn, llm, now, fenced=True)
            return [
                prepare_in(
                    db,
                    conn,
                    slot,
                    owner=effects.owner,
                    incarnation_id=effects.incarnation_id,
                    ttl_ms=effects.ttl_ms,
                    now=now,
                    turn_known_open=True,
                )
                for slot in slots
            ]

    def close(self, request: CloseRequest) -> ClosedStep:
        """The step's fenced commit, its held effect outcomes, and the lease released (or
        kept, when the worker continues with the session at once)."""
        draft = request.draft
        check_session_id(draft.session_id)
        if draft.fence is not None and draft.fence.session_id != draft.session_id:
            raise LeaseLost(
                f"commit for session {draft.session_id!r} presents the lease of "
                f"session {draft.fence.session_id!r}"
            )
        db = self.db
        with db.tx() as conn:
            now = db.lock_session_now(conn, draft.session_id)
            stamp = draft.turn_stamp.turn_id if draft.turn_stamp is not None else None
            head = db.read_head(conn, draft.session_id, stamp_of_turn=stamp)
            # The lease is released after the commit unless the worker goes on at once with
            # the session's next step: whether one waits is known only once this commit
            # (which may defer steer input to the next turn) has been applied.
            result = apply_commit(conn, replace(draft, release_lease=False), head, now)
            if not result.replayed:
                for outcome in request.outcomes:
                    finalize_in(conn, outcome, now, fenced=True)
            continues = isinstance(draft.active_turn, TurnState) and not result.replayed
            more = continues or waiting_in(conn, draft.session_id, now)
            kept = request.keep_lease and more and draft.fence is not None
            if not kept and draft.fence is not None:
                conn.execute(release_statement(draft.fence))
            # A replayed commit's replies were written by the first one (the sweeper sends
            # any that never went out).
            replies = () if result.replayed else draft.replies
            return ClosedStep(result, more_work=more, lease_kept=kept, replies=replies)

    # ── open, piece by piece ─────────────────────────────────────────────────────────────

    def _configured(self, conn: Connection, row: Row[Any], request: OpenRequest) -> SessionRecord:
        """The session's record; a session created without a policy gets the caller's."""
        record = decode_session(row)
        if record.policy is None and request.default_policy is not None:
            policy = parse_policy(request.default_policy)
            conn.execute(
                update(t.sessions)
                .where(t.sessions.c.session_id == record.session_id)
                .values(config=policy.model_dump(mode="json"))
            )
            record = replace(record, policy=policy)
        return record

    def _resume(
        self,
        conn: Connection,
        fence: Fence,
        turn: TurnState,
        opened: OpenedStep,
        request: OpenRequest,
        now: int,
    ) -> None:
        """Continue the active turn: its claims move to this lease generation (it continues
        durable work, it does not steal it) and this start of its step is counted. Steer
        input and work queued for the earliest safe boundary join it here."""
        attempt = restamp_in(
            conn,
            fence,
            turn.input_claim.claim_id if turn.input_claim else None,
            turn.queue_claim.claim_id if turn.queue_claim else None,
        )
        turn = replace(turn, attempts=attempt.number, last_error=attempt.last_error)
        opened.work, opened.turn = "turn", turn
        # A re-run whose LLM call is journaled must send the very same request, so it takes
        # no new steer input or queued work; nor does a cancelled turn (its final commit
        # defers or returns them).
        accept = not turn.cancel_requested and not self._llm_journaled(conn, fence, turn)
        opened.turn, opened.wakes, opened.wakes_accepted_now = take_boundary_work_in(
            self.db, conn, fence, turn, now, accept=accept
        )
        if turn.input_claim is None:
            return
        claim_id = turn.input_claim.claim_id
        if accept:
            accepted = accept_active_in(conn, fence, claim_id, turn.turn_id, now)
            opened.accepted_now = tuple(i.input_id for i in accepted)
        opened.steer = tuple(accepted_in(conn, fence.session_id, claim_id))

    def _llm_journaled(self, conn: Connection, fence: Fence, turn: TurnState) -> bool:
        j = t.effect_journal
        scope = effect_scope_id(fence.session_id, turn.turn_id)
        key = llm_replay_key(fence.session_id, turn.turn_id, turn.step_index)
        row = conn.execute(
            j.select()
            .with_only_columns(j.c.status)
            .where(j.c.scope_id == scope, j.c.replay_key == key)
        ).first()
        return row is not None

    def _pick_work(
        self,
        conn: Connection,
        fence: Fence,
        session: Any,
        opened: OpenedStep,
        now: int,
        has_queued_work: bool,
    ) -> None:
        """No turn runs: a leading session command, else the next inputs as one turn, else
        ready queued turn work as one turn. `has_queued_work` False (the head read found
        none ready or claimed) skips the queue."""
        db = self.db
        # This transaction has just taken the lease and found no active turn, so the live
        # claims are exactly those of this lease generation.
        queue_live = live_claim_clause(QUEUE_CLAIMS, fence.fencing_token, None)
        command = (
            claim_in(db, conn, fence, now, select_leading_command, 1, queue_live)
            if has_queued_work
            else None
        )
        if command is not None:
            opened.work, opened.command = "command", command
            return
        input_live = live_claim_clause(INPUT_CLAIMS, fence.fencing_token, None)
        claim = claim_next_turn_in(db, conn, fence, now, live=input_live)
        if claim is not None:
            inputs = claim.inputs
            branch = inputs[0].input.get("branch_from")
            draft = TurnState(
                turn_id="",
                input_claim=ClaimRef(claim.claim_id, claim.claim_token),
                input_ids=tuple(i.input_id for i in inputs),
                opening=opening_for_inputs([i.input for i in inputs]),
                branch_from=str(branch) if branch else None,
                replies=replies_for_inputs([(i.input_id, i.input) for i in inputs]),
            )
            turn = begin_in(conn, session, "inputs", draft.input_ids, now, draft)
            opened.work, opened.turn, opened.new_turn = "turn", turn, True
            return
        if not has_queued_work:
            return
        queued = claim_in(
            db,
            conn,
            fence,
            now,
            lambda c: select_turn_work_prefix(c, MAX_TURN_BATCHES),
            MAX_TURN_BATCHES,
            queue_live,
        )
        if queued is not None:
            batches = queued.batches
            draft = TurnState(
                turn_id="",
                queue_claim=ClaimRef(queued.claim_id, queued.claim_token),
                batch_ids=tuple(b.batch_id for b in batches),
                opening=opening_for_wakes([p for b in batches for p in b.payloads]),
            )
            turn = begin_in(conn, session, "queue", draft.batch_ids, now, draft)
            opened.work, opened.turn, opened.new_turn = "turn", turn, True

    def _load_graph(
        self, conn: Connection, opened: OpenedStep, cached_revision: int | None
    ) -> None:
        """Read the graph the step works on, unless the worker's cache holds this revision.

        A turn's first step starts from its branch point, if it has one. A stored leaf that
        names a missing node can only be healed from the full graph.
        """
        record, turn = opened.record, opened.turn
        residency = record.policy.residency if record.policy else "active_path_only"
        branch = turn.branch_from if turn is not None and turn.step_index == 0 else None
        if residency != "active_path_only":
            graph = load_graph_in(conn, record, FullGraph())
            if branch is not None:
                if branch in graph.nodes:
                    graph.branch_to(branch)
                else:
                    opened.branch_missing = _missing(branch)
            opened.graph = graph
            return
        if branch is None and cached_revision == record.head_revision:
            return
        graph = load_graph_in(conn, record, ActivePath(leaf=branch))
        if branch is not None and branch not in graph.nodes:
            opened.branch_missing = _missing(branch)
            graph = load_graph_in(conn, record, ActivePath())
        if record.leaf_node_id is not None and not graph.nodes and branch is None:
            graph = load_graph_in(conn, record, FullGraph())
            opened.healed_from_full_graph = True
        opened.graph = graph

    def _prepare_first(
        self,
        conn: Connection,
        opened: OpenedStep,
        slot: EffectSlot,
        effects: EffectHolder,
        now: int,
    ) -> None:
        try:
            opened.first_effect = prepare_in(
                self.db,
                conn,
                slot,
                owner=effects.owner,
                incarnation_id=effects.incarnation_id,
                ttl_ms=effects.ttl_ms,
                now=now,
                turn_known_open=True,
            )
        except ReplayMismatch as exc:
            opened.mismatch = exc.to_dict()


def _missing(node_id: str) -> str:
    return f"cannot branch to unknown node {node_id!r}"
