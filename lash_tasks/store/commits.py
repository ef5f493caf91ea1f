"""`Commits`: the fenced commit, one transaction that records a turn step or nothing at all.

Order inside the transaction (after lash): lock the session, replay an existing
turn stamp, check the lease fence, compare-and-set the head revision, settle
claims, write the graph delta, move the head, the active turn, deferred steer
inputs, attachment stamps, outbox rows (queued work, replies), the turn stamp, and the
lease release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, null, select, update

from lash_tasks.errors import (
    HeadRevisionConflict,
    LeaseLost,
    TurnCommitConflict,
    UnsettledClaim,
)
from lash_tasks.machine import (
    ClaimCompletion,
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    GraphUnchanged,
    TurnState,
)
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.claiming import settle
from lash_tasks.store.database import Database, SessionHead, check_fence_row
from lash_tasks.store.graph_writes import write_graph
from lash_tasks.store.inputs import INPUT_CLAIMS
from lash_tasks.store.leases import release_statement
from lash_tasks.store.records import InputState
from lash_tasks.store.replies import write_replies
from lash_tasks.store.rows import turn_state_columns
from lash_tasks.store.session_events import append_events
from lash_tasks.store.work_queue import QUEUE_CLAIMS, QueueState, enqueue_batch


class Commits:
    def __init__(self, db: Database) -> None:
        self.db = db

    def commit(self, draft: CommitDraft) -> CommitResult:
        """Apply `draft` atomically. Any failed check raises and changes nothing."""
        check_session_id(draft.session_id)
        if draft.fence is not None and draft.fence.session_id != draft.session_id:
            raise LeaseLost(
                f"commit for session {draft.session_id!r} presents the lease of "
                f"session {draft.fence.session_id!r}"
            )
        with self.db.tx() as conn:
            now = self.db.lock_session_now(conn, draft.session_id)
            head = self.db.read_head(conn, draft.session_id, stamp_of_turn=_stamped_turn(draft))
            return apply_commit(conn, draft, head, now)


def apply_commit(conn: Connection, draft: CommitDraft, head: SessionHead, now: int) -> CommitResult:
    """`Commits.commit` inside the caller's transaction, which holds the session lock;
    `head` is what it read of the session after taking the lock."""
    if draft.turn_stamp is not None:
        replay = _replay_stamp(conn, draft, head)
        if replay is not None:
            return replay
    if draft.fence is None:
        raise LeaseLost("a commit must present a session lease fence")
    check_fence_row(draft.fence, head.lease, now)
    session = head.session
    if session.head_revision != draft.expected_head_revision:
        raise HeadRevisionConflict(
            f"session {draft.session_id!r} is at revision {session.head_revision}, "
            f"commit expected {draft.expected_head_revision}",
            session_id=draft.session_id,
        )
    if draft.returned_input_ids:
        _return_to_pending(conn, draft.session_id, draft.returned_input_ids, now)
    if draft.returned_batch_ids:
        _return_to_ready(conn, draft.session_id, draft.returned_batch_ids)
    _settle_claims(conn, draft, head.active_turn, now)
    graph_changed = write_graph(conn, draft, session.leaf_node_id, now)
    new_revision = draft.expected_head_revision + 1
    _move_head(conn, draft, new_revision, graph_changed, now)
    _apply_active_turn(conn, draft, now)
    if draft.defer_active_inputs:
        _defer_unaccepted_inputs(conn, draft.session_id, now)
    _stamp_attachments(conn, draft, now)
    for outbox_draft in draft.outbox:
        enqueue_batch(conn, draft.session_id, outbox_draft, now)
    if draft.replies:
        write_replies(conn, draft.replies, now)
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
        append_events(conn, draft.session_id, draft.events, now)
    if draft.release_lease:
        _release(conn, draft)
    return CommitResult(
        head_revision=new_revision,
        turn_result=draft.turn_stamp.result if draft.turn_stamp else None,
    )


def _stamped_turn(draft: CommitDraft) -> str | None:
    """The turn whose stamp the commit's head read should bring along, if it writes one."""
    return draft.turn_stamp.turn_id if draft.turn_stamp is not None else None


def _replay_stamp(conn: Connection, draft: CommitDraft, head: SessionHead) -> CommitResult | None:
    assert draft.turn_stamp is not None
    if head.stamp_read:
        row = head.stamp
    else:
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


def _settle_claims(conn: Connection, draft: CommitDraft, active: Any, now: int) -> None:
    assert draft.fence is not None
    settles = draft.input_completions or draft.queue_completions
    if (
        draft.carries_claimed_content
        and not settles
        and not isinstance(draft.active_turn, TurnState)
    ):
        raise UnsettledClaim(
            "the commit carries claimed content but settles no claim",
            session_id=draft.session_id,
        )
    generation = draft.fence.fencing_token
    # The active turn's own claims are held by the turn, not by one lease generation: a
    # turn resumed under a newer lease (the fence was just checked) settles them as is.
    turn_claims = {active.input_claim_id, active.queue_claim_id} - {None} if active else set()

    def held_by(completion: ClaimCompletion) -> int | None:
        return None if completion.claim_id in turn_claims else generation

    input_values: dict[str, object] = {"state": InputState.COMPLETED, "updated_at": now}
    if draft.turn_stamp is not None:
        input_values["turn_id"] = draft.turn_stamp.turn_id
    for completion in draft.input_completions:
        settle(
            conn,
            INPUT_CLAIMS,
            draft.session_id,
            completion,
            held_by(completion),
            [InputState.CLAIMED, InputState.ACCEPTED],
            input_values,
        )
    for completion in draft.queue_completions:
        settle(
            conn,
            QUEUE_CLAIMS,
            draft.session_id,
            completion,
            held_by(completion),
            [QueueState.CLAIMED],
            {"state": QueueState.COMPLETED},
        )


def _move_head(
    conn: Connection, draft: CommitDraft, revision: int, graph_changed: bool, now: int
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


def _apply_active_turn(conn: Connection, draft: CommitDraft, now: int) -> None:
    change = draft.active_turn
    table = t.active_turns
    if isinstance(change, ClearActiveTurn):
        conn.execute(delete(table).where(table.c.session_id == draft.session_id))
    elif isinstance(change, TurnState):
        # The step committed: the next one starts counting its attempts afresh.
        values = {**turn_state_columns(change), "attempts": 0, "last_error": null()}
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


def _stamp_attachments(conn: Connection, draft: CommitDraft, now: int) -> None:
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


def _defer_unaccepted_inputs(conn: Connection, session_id: str, now: int) -> None:
    p = t.pending_inputs
    conn.execute(
        update(p)
        .where(p.c.session_id == session_id, p.c.state == InputState.PENDING_ACTIVE)
        .values(state=InputState.PENDING, ingress="next_turn", updated_at=now)
    )


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


def _return_to_ready(conn: Connection, session_id: str, batch_ids: Sequence[str]) -> None:
    """Queued batches a turn took at a step boundary but never showed the model are ready
    again (for the next turn); done before the claim is settled, like returned inputs."""
    q = t.queued_work
    conn.execute(
        update(q)
        .where(
            q.c.session_id == session_id,
            q.c.batch_id.in_(list(batch_ids)),
            q.c.state == QueueState.CLAIMED,
        )
        .values(
            state=QueueState.READY,
            claim_id=None,
            claim_token=None,
            claim_generation=None,
            turn_id=None,
        )
    )


def _release(conn: Connection, draft: CommitDraft) -> None:
    assert draft.fence is not None
    conn.execute(release_statement(draft.fence))
