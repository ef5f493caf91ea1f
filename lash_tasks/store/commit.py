"""The fenced commit: one transaction that records a turn step, or nothing at all.

Order inside the transaction (after lash): lock the session, replay an existing
turn stamp, check the lease fence, compare-and-set the head revision, settle
claims, write the graph delta, move the head, the active turn, deferred steer
inputs, attachment stamps, outbox rows, the turn stamp, and the lease release.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, delete, func, insert, null, select, update

from lash_tasks.errors import (
    HeadRevisionConflict,
    LeaseLost,
    NodeExists,
    StaleClaim,
    TurnCommitConflict,
    UnknownParentNode,
    UnsettledClaim,
)
from lash_tasks.machine import (
    ActiveTurn,
    ClaimCompletion,
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    GraphAppend,
    GraphReplaceFull,
    GraphUnchanged,
    Node,
)
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.base import encode_node_payload
from lash_tasks.store.leases import release_statement
from lash_tasks.store.queued import QueuedWorkMixin
from lash_tasks.store.records import InputState
from lash_tasks.store.sessions import SessionsMixin


class CommitMixin(SessionsMixin, QueuedWorkMixin):
    def commit(self, draft: CommitDraft) -> CommitResult:
        """Apply `draft` atomically. Any failed check raises and changes nothing."""
        check_session_id(draft.session_id)
        if draft.fence is not None and draft.fence.session_id != draft.session_id:
            raise LeaseLost(
                f"commit for session {draft.session_id!r} presents the lease of "
                f"session {draft.fence.session_id!r}"
            )
        with self.tx() as conn:
            self.dialect.lock_session(conn, draft.session_id)
            head = self._require_session(conn, draft.session_id)
            now = self.now_ms(conn)
            if draft.turn_stamp is not None:
                replay = self._replay_stamp(conn, draft)
                if replay is not None:
                    return replay
            if draft.fence is None:
                raise LeaseLost("a commit must present a session lease fence")
            self._check_fence(conn, draft.fence, now)
            if head.head_revision != draft.expected_head_revision:
                raise HeadRevisionConflict(
                    f"session {draft.session_id!r} is at revision {head.head_revision}, "
                    f"commit expected {draft.expected_head_revision}",
                    session_id=draft.session_id,
                )
            if draft.returned_input_ids:
                _return_to_pending(conn, draft.session_id, draft.returned_input_ids, now)
            self._settle_claims(conn, draft, now)
            graph_changed = self._write_graph(conn, draft, head.leaf_node_id, now)
            new_revision = draft.expected_head_revision + 1
            self._move_head(conn, draft, new_revision, graph_changed, now)
            self._apply_active_turn(conn, draft, now)
            if draft.defer_active_inputs:
                _defer_unaccepted_inputs(conn, draft.session_id, now)
            self._stamp_attachments(conn, draft, now)
            for outbox_draft in draft.outbox:
                self._enqueue_batch(conn, draft.session_id, outbox_draft, now)
            if draft.turn_stamp is not None:
                conn.execute(
                    insert(t.turn_commits).values(
                        session_id=draft.session_id,
                        turn_id=draft.turn_stamp.turn_id,
                        turn_commit_hash=draft.turn_stamp.turn_commit_hash,
                        head_revision=new_revision,
                        result=draft.turn_stamp.result,
                        committed_at=now,
                    )
                )
            if draft.events:
                _append_events(conn, draft, now)
            if draft.release_lease:
                _release(conn, draft)
            return CommitResult(
                head_revision=new_revision,
                turn_result=draft.turn_stamp.result if draft.turn_stamp else None,
            )

    def _replay_stamp(self, conn: Connection, draft: CommitDraft) -> CommitResult | None:
        assert draft.turn_stamp is not None
        row = conn.execute(
            select(t.turn_commits).where(
                t.turn_commits.c.session_id == draft.session_id,
                t.turn_commits.c.turn_id == draft.turn_stamp.turn_id,
            )
        ).first()
        if row is None:
            return None
        if row.turn_commit_hash != draft.turn_stamp.turn_commit_hash:
            raise TurnCommitConflict(
                f"turn {draft.turn_stamp.turn_id!r} of session {draft.session_id!r} was already "
                "committed with different content",
                session_id=draft.session_id,
                turn_id=draft.turn_stamp.turn_id,
            )
        if draft.fence is not None and draft.release_lease:
            _release(conn, draft)
        return CommitResult(head_revision=row.head_revision, replayed=True, turn_result=row.result)

    def _settle_claims(self, conn: Connection, draft: CommitDraft, now: int) -> None:
        assert draft.fence is not None
        settles = draft.input_completions or draft.queue_completions
        if (
            draft.carries_claimed_content
            and not settles
            and not isinstance(draft.active_turn, ActiveTurn)
        ):
            raise UnsettledClaim(
                "the commit carries claimed content but settles no claim",
                session_id=draft.session_id,
            )
        generation = draft.fence.fencing_token
        # The active turn's own claims are held by the turn, not by one lease generation: a
        # turn resumed under a newer lease (the fence was just checked) settles them as is.
        active = self._active_turn_row(conn, draft.session_id)
        turn_claims = {active.input_claim_id, active.queue_claim_id} - {None} if active else set()

        def held_by(completion: ClaimCompletion) -> int | None:
            return None if completion.claim_id in turn_claims else generation

        for completion in draft.input_completions:
            _complete(
                conn,
                t.pending_inputs,
                draft.session_id,
                completion,
                held_by(completion),
                [InputState.CLAIMED, InputState.ACCEPTED],
                InputState.COMPLETED,
                now,
                turn_id=draft.turn_stamp.turn_id if draft.turn_stamp else None,
            )
        for completion in draft.queue_completions:
            _complete(
                conn,
                t.queued_work,
                draft.session_id,
                completion,
                held_by(completion),
                ["claimed"],
                "completed",
                None,
            )

    def _write_graph(
        self, conn: Connection, draft: CommitDraft, stored_leaf: str | None, now: int
    ) -> bool:
        graph = draft.graph
        if isinstance(graph, GraphUnchanged):
            self._revive_paths(conn, draft.session_id, {graph.leaf_node_id} - {stored_leaf})
            return False
        if isinstance(graph, GraphReplaceFull):
            conn.execute(
                delete(t.graph_nodes).where(t.graph_nodes.c.session_id == draft.session_id)
            )
        _check_node_ids(conn, draft.session_id, graph.nodes)
        seq = self._next_seq(conn, draft.session_id)
        rows = [
            {
                "session_id": draft.session_id,
                "node_id": node.node_id,
                "parent_node_id": node.parent_node_id,
                "seq": seq + offset,
                "kind": node.kind,
                "payload": encode_node_payload(node),
                "created_at": node.created_at,
                "created_ms": now,
            }
            for offset, node in enumerate(graph.nodes)
        ]
        if rows:
            conn.execute(insert(t.graph_nodes), rows)
        if isinstance(graph, GraphAppend):
            # The stored active path is never tombstoned, so an append under the old leaf
            # needs nothing; one under any other node (a branch) may hang off tombstoned
            # history, which must live again or vacuum would cut the new active path.
            batch = {n.node_id for n in graph.nodes}
            anchors = {n.parent_node_id for n in graph.nodes} | {graph.leaf_node_id}
            self._revive_paths(conn, draft.session_id, anchors - batch - {stored_leaf})
        return isinstance(graph, (GraphAppend, GraphReplaceFull))

    def _revive_paths(self, conn: Connection, session_id: str, anchors: set[str | None]) -> None:
        """Clear the tombstone of every node from each anchor up to its root (lash's append
        un-tombstones too): a node back on the active path is history again, not garbage."""
        if not anchors - {None}:
            return
        n = t.graph_nodes
        path = self._ancestry(session_id, anchors)
        conn.execute(
            update(n)
            .where(
                n.c.session_id == session_id,
                n.c.tombstoned_at.is_not(None),
                n.c.node_id.in_(select(path.c.node_id)),
            )
            .values(tombstoned_at=None)
        )

    def _move_head(
        self, conn: Connection, draft: CommitDraft, revision: int, graph_changed: bool, now: int
    ) -> None:
        values: dict[str, object] = {
            "head_revision": revision,
            "leaf_node_id": draft.graph.leaf_node_id,
            "updated_at": now,
            "input_tokens": t.sessions.c.input_tokens + draft.snapshot.usage_delta[0],
            "output_tokens": t.sessions.c.output_tokens + draft.snapshot.usage_delta[1],
        }
        if graph_changed or not isinstance(draft.graph, GraphUnchanged):
            values["graph_changed_at"] = now
        if draft.snapshot.tool_state is not None:
            values["tool_state"] = draft.snapshot.tool_state
            values["tool_state_generation"] = draft.snapshot.tool_state_generation
        if draft.snapshot.plugin_snapshot is not None:
            values["plugin_snapshot"] = draft.snapshot.plugin_snapshot
        result = conn.execute(
            update(t.sessions)
            .where(
                t.sessions.c.session_id == draft.session_id,
                t.sessions.c.head_revision == draft.expected_head_revision,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise HeadRevisionConflict(
                f"session {draft.session_id!r} moved past revision {draft.expected_head_revision}",
                session_id=draft.session_id,
            )

    def _apply_active_turn(self, conn: Connection, draft: CommitDraft, now: int) -> None:
        change = draft.active_turn
        table = t.active_turns
        if isinstance(change, ClearActiveTurn):
            conn.execute(delete(table).where(table.c.session_id == draft.session_id))
        elif isinstance(change, ActiveTurn):
            values = {
                "turn_id": change.turn_id,
                "step_index": change.step_index,
                "input_claim_id": change.input_claim_id,
                "queue_claim_id": change.queue_claim_id,
                "state": change.state,
                # The step committed: the next one starts counting its attempts afresh.
                "attempts": 0,
                "last_error": null(),
            }
            updated = conn.execute(
                update(table).where(table.c.session_id == draft.session_id).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(
                    insert(table).values(
                        session_id=draft.session_id,
                        cancel_requested=change.cancel_requested,
                        started_at=now,
                        **values,
                    )
                )

    def _stamp_attachments(self, conn: Connection, draft: CommitDraft, now: int) -> None:
        """Stamp listed ids and the turn's own intents. Update only: never resurrect a row."""
        m = t.attachment_manifest
        if draft.committed_attachment_ids:
            conn.execute(
                update(m)
                .where(
                    m.c.session_id == draft.session_id,
                    m.c.attachment_id.in_(list(draft.committed_attachment_ids)),
                    m.c.committed_at.is_(None),
                )
                .values(committed_at=now)
            )
        if draft.turn_stamp is not None:
            conn.execute(
                update(m)
                .where(
                    m.c.session_id == draft.session_id,
                    m.c.owner_kind == "turn",
                    m.c.owner_id == draft.turn_stamp.turn_id,
                    m.c.committed_at.is_(None),
                )
                .values(committed_at=now)
            )


def _complete(
    conn: Connection,
    table: Table,
    session_id: str,
    completion: ClaimCompletion,
    generation: int | None,
    from_states: Sequence[str],
    to_state: str,
    now: int | None,
    turn_id: str | None = None,
) -> None:
    """Settle one claim. `generation=None`: the claim is the active turn's, any generation."""
    values: dict[str, object] = {"state": to_state}
    if now is not None:
        values["updated_at"] = now
    if turn_id is not None:
        values["turn_id"] = turn_id
    conditions = [
        table.c.session_id == session_id,
        table.c.claim_id == completion.claim_id,
        table.c.claim_token == completion.claim_token,
        table.c.state.in_(list(from_states)),
    ]
    if generation is not None:
        conditions.append(table.c.claim_generation == generation)
    result = conn.execute(update(table).where(*conditions).values(**values))
    if result.rowcount == 0:
        raise StaleClaim(
            f"claim {completion.claim_id!r} is no longer held by this lease generation",
            session_id=session_id,
            claim_id=completion.claim_id,
        )


def _check_node_ids(conn: Connection, session_id: str, nodes: Sequence[Node]) -> None:
    """New ids must be free (even among tombstoned rows) and parents must exist."""
    if not nodes:
        return
    batch_ids = {n.node_id for n in nodes}
    wanted = {n.parent_node_id for n in nodes if n.parent_node_id is not None} - batch_ids
    found = {
        r.node_id
        for r in conn.execute(
            select(t.graph_nodes.c.node_id).where(
                t.graph_nodes.c.session_id == session_id,
                t.graph_nodes.c.node_id.in_(sorted(batch_ids | wanted)),
            )
        )
    }
    taken = sorted(batch_ids & found)
    if taken:
        raise NodeExists(
            f"node ids already exist in session {session_id!r}: {taken}",
            session_id=session_id,
            node_ids=taken,
        )
    missing = sorted(wanted - found)
    if missing:
        raise UnknownParentNode(
            f"nodes name parents that do not exist in session {session_id!r}: {missing}",
            session_id=session_id,
        )


def _defer_unaccepted_inputs(conn: Connection, session_id: str, now: int) -> None:
    p = t.pending_inputs
    conn.execute(
        update(p)
        .where(p.c.session_id == session_id, p.c.state == InputState.PENDING_ACTIVE)
        .values(state=InputState.PENDING, ingress="next_turn", updated_at=now)
    )


def _append_events(conn: Connection, draft: CommitDraft, now: int) -> None:
    """Number the events after the session's last; the session lock makes `max` safe."""
    e = t.session_events
    last = conn.execute(select(func.max(e.c.seq)).where(e.c.session_id == draft.session_id))
    start = (last.scalar() or 0) + 1
    rows = [
        {"session_id": draft.session_id, "seq": start + i, "event": event, "created_at": now}
        for i, event in enumerate(draft.events)
    ]
    conn.execute(insert(e), rows)


def _return_to_pending(
    conn: Connection, session_id: str, input_ids: Sequence[str], now: int
) -> None:
    """Accepted steer inputs the turn never answered wait for the next turn instead; done
    before the claim is settled, which completes whatever the turn still holds."""
    p = t.pending_inputs
    conn.execute(
        update(p)
        .where(
            p.c.session_id == session_id,
            p.c.input_id.in_(list(input_ids)),
            p.c.state == InputState.ACCEPTED,
        )
        .values(
            state=InputState.PENDING,
            ingress="next_turn",
            claim_id=None,
            claim_token=None,
            claim_generation=None,
            turn_id=None,
            updated_at=now,
        )
    )


def _release(conn: Connection, draft: CommitDraft) -> None:
    assert draft.fence is not None
    conn.execute(release_statement(draft.fence))
