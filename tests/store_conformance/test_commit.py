"""Store conformance: the fenced commit — CAS, session binding, stamps, all-or-nothing."""

from __future__ import annotations

import pytest

from lash_tasks.errors import (
    HeadRevisionConflict,
    LeaseLost,
    SessionNotFound,
    SourceKeyConflict,
    StaleClaim,
    TurnCommitConflict,
    UnknownParentNode,
    UnsettledClaim,
)
from lash_tasks.machine import (
    ClaimCompletion,
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    Fence,
    GraphReplaceFull,
    TurnStamp,
)
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    append,
    commit_chain,
    completion,
    enqueue,
    msg,
    new_session,
    race,
    stamp_count,
    start_turn,
    states,
    take_lease,
    turn_work,
    unchanged,
)


def _snapshot(store: Store, sid: str) -> tuple[object, ...]:
    """Everything a failed commit must leave untouched."""
    record = store.sessions.record(sid)
    loaded = store.sessions.load(sid)
    return (
        record.head_revision,
        record.leaf_node_id,
        record.usage,
        sorted(loaded.graph.nodes),
        loaded.active_turn,
        states(store, sid),
        stamp_count(store, sid),
        [b.batch_id for b in store.queue.list_batches(sid, include_done=True)],
    )


def test_concurrent_head_cas_applies_exactly_once(store: Store) -> None:
    """Two racing commits expecting the same head: one applies, the other HeadRevisionConflict."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    drafts = [append(sid, 0, lease.fence, [msg(f"n{i}", None, f"racer {i}")]) for i in (1, 2)]
    results = race([lambda d=d: store.commits.commit(d) for d in drafts])  # type: ignore[misc]
    applied = [r for r in results if isinstance(r, CommitResult)]
    conflicts = [r for r in results if isinstance(r, HeadRevisionConflict)]
    assert len(applied) == 1 and len(conflicts) == 1, results
    assert applied[0].head_revision == 1
    record = store.sessions.record(sid)
    assert record.head_revision == 1
    graph = store.sessions.load(sid).graph
    assert len(graph) == 1
    assert record.leaf_node_id in graph.nodes


def test_stale_head_is_refused_and_nothing_written(store: Store) -> None:
    """A commit expecting an old head revision raises HeadRevisionConflict and writes nothing."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "n1")
    before = _snapshot(store, sid)
    with pytest.raises(HeadRevisionConflict):
        store.commits.commit(
            append(sid, 0, lease.fence, [msg("n2", "n1")], outbox=(turn_work("o1"),))
        )
    assert _snapshot(store, sid) == before


def test_unknown_parent_is_refused_and_nothing_written(store: Store) -> None:
    """A node whose parent does not exist raises UnknownParentNode and the commit writes nothing."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "n1")
    before = _snapshot(store, sid)
    draft = append(sid, 1, lease.fence, [msg("n2", "n1"), msg("n3", "ghost")])
    with pytest.raises(UnknownParentNode):
        store.commits.commit(draft)
    assert _snapshot(store, sid) == before


def test_parents_are_looked_up_in_the_same_session_only(store: Store) -> None:
    """A parent id that exists only in another session counts as unknown."""
    new_session(store, "a")
    commit_chain(store, take_lease(store, "a"), "only-in-a")
    sid = new_session(store, "b")
    lease = take_lease(store, sid)
    with pytest.raises(UnknownParentNode):
        store.commits.commit(append(sid, 0, lease.fence, [msg("n1", "only-in-a")]))
    assert len(store.sessions.load(sid).graph) == 0


def test_commit_presenting_another_sessions_fence_is_refused(store: Store) -> None:
    """The lease of session A cannot commit to session B; neither session changes."""
    new_session(store, "a")
    new_session(store, "b")
    lease_a = take_lease(store, "a")
    with pytest.raises(LeaseLost):
        store.commits.commit(append("b", 0, lease_a.fence, [msg("n1", None)]))
    assert store.sessions.record("a").head_revision == 0
    assert store.sessions.record("b").head_revision == 0
    assert len(store.sessions.load("b").graph) == 0


def test_commit_to_an_unknown_session_raises_session_not_found(store: Store) -> None:
    """A commit for a session that does not exist raises SessionNotFound and creates nothing."""
    new_session(store, "a")
    lease = take_lease(store, "a")
    ghost_fence = Fence("ghost", lease.owner_id, lease.lease_token, 1)
    with pytest.raises(SessionNotFound):
        store.commits.commit(append("ghost", 0, ghost_fence, [msg("n1", None)]))
    assert store.sessions.exists("ghost") is False


def test_unfenced_commit_is_refused(store: Store) -> None:
    """A commit with no fence and no replayable turn stamp raises LeaseLost."""
    sid = new_session(store)
    take_lease(store, sid)
    with pytest.raises(LeaseLost):
        store.commits.commit(append(sid, 0, None, [msg("n1", None)]))
    unstamped = append(sid, 0, None, [msg("n1", None)], turn_stamp=TurnStamp("t1", "h", {}))
    with pytest.raises(LeaseLost):
        store.commits.commit(unstamped)
    assert store.sessions.record(sid).head_revision == 0


def test_turn_stamp_is_idempotent_and_conflicts_on_changed_hash(store: Store) -> None:
    """Same turn id + hash returns the stored result (replayed, even without a lease); a changed
    hash raises TurnCommitConflict; nothing is written twice."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    stamp = TurnStamp("turn-1", "a" * 64, {"answer": "42"})
    draft = append(sid, 0, lease.fence, [msg("n1", None)], turn_stamp=stamp, release_lease=True)
    first = store.commits.commit(draft)
    assert first == CommitResult(head_revision=1, replayed=False, turn_result={"answer": "42"})
    assert store.leases.state(sid)[0] is None

    # The lease is gone: the retry presents the old fence (released) and then none at all.
    again = store.commits.commit(draft)
    assert again == CommitResult(head_revision=1, replayed=True, turn_result={"answer": "42"})
    unfenced = append(sid, 0, None, [msg("n1", None)], turn_stamp=stamp)
    assert store.commits.commit(unfenced).replayed is True

    changed = append(sid, 0, None, [msg("n1", None)], turn_stamp=TurnStamp("turn-1", "b" * 64, {}))
    with pytest.raises(TurnCommitConflict):
        store.commits.commit(changed)
    assert store.sessions.record(sid).head_revision == 1
    assert len(store.sessions.load(sid).graph) == 1
    assert stamp_count(store, sid) == 1


def test_replayed_stamp_releases_the_presented_live_lease_only(store: Store) -> None:
    """A replayed final commit that asks to release a live lease it holds releases it."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    stamp = TurnStamp("turn-1", "a" * 64, {"ok": True})
    store.commits.commit(append(sid, 0, lease.fence, [msg("n1", None)], turn_stamp=stamp))
    assert store.leases.state(sid)[0] == lease.owner_id
    replay = append(sid, 0, lease.fence, [msg("n1", None)], turn_stamp=stamp, release_lease=True)
    assert store.commits.commit(replay).replayed is True
    owner, fencing, _ = store.leases.state(sid)
    assert owner is None and fencing == lease.fencing_token


def test_stale_claim_completion_changes_nothing(store: Store) -> None:
    """A commit whose claim completion no longer holds raises StaleClaim and changes nothing:
    graph, head revision, inputs, stamp and outbox all as before."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "n1")
    enqueue(store, sid, "k1")
    claim = store.inputs.claim_next_turn(lease.fence)
    assert claim is not None
    before = _snapshot(store, sid)
    draft = append(
        sid,
        1,
        lease.fence,
        [msg("n2", "n1")],
        input_completions=(ClaimCompletion(claim.claim_id, "not-the-token"),),
        carries_claimed_content=True,
        turn_stamp=TurnStamp("turn-1", "c" * 64, {}),
        active_turn=ClearActiveTurn(),
        outbox=(turn_work("follow-up"),),
        release_lease=True,
    )
    with pytest.raises(StaleClaim):
        store.commits.commit(draft)
    assert _snapshot(store, sid) == before
    assert store.leases.state(sid)[0] == lease.owner_id


def test_bad_outbox_rolls_back_the_whole_commit(store: Store) -> None:
    """An outbox row that conflicts on its source key fails the commit; claims stay unsettled."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.queue.enqueue(sid, turn_work("dup"))
    enqueue(store, sid, "k1")
    claim = store.inputs.claim_next_turn(lease.fence)
    assert claim is not None
    before = _snapshot(store, sid)
    conflicting = turn_work("dup", slot="join", merge_key="other")
    draft = append(
        sid,
        0,
        lease.fence,
        [msg("n1", None)],
        input_completions=(completion(claim),),
        turn_stamp=TurnStamp("turn-1", "d" * 64, {}),
        outbox=(conflicting,),
    )
    with pytest.raises(SourceKeyConflict):
        store.commits.commit(draft)
    assert _snapshot(store, sid) == before


def test_valid_final_commit_settles_claims_stamps_and_adds_outbox(store: Store) -> None:
    """A final commit completes its claim, clears the active turn, stamps and enqueues outbox."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    item = enqueue(store, sid, "k1")
    claim = store.inputs.claim_next_turn(lease.fence)
    assert claim is not None
    store.commits.commit(
        append(
            sid,
            0,
            lease.fence,
            [msg("u1", None)],
            active_turn=start_turn("turn-1", claim.claim_id),
            carries_claimed_content=True,
        )
    )
    assert store.sessions.load(sid).active_turn is not None
    result = store.commits.commit(
        append(
            sid,
            1,
            lease.fence,
            [msg("a1", "u1", role="assistant")],
            input_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
            turn_stamp=TurnStamp("turn-1", "e" * 64, {"final": True}),
            outbox=(turn_work("follow-up"),),
        )
    )
    assert result.head_revision == 2
    assert states(store, sid) == {item.input_id: "completed"}
    assert store.sessions.load(sid).active_turn is None
    assert [b.source_key for b in store.queue.list_batches(sid)] == ["follow-up"]
    assert stamp_count(store, sid) == 1


def test_claimed_content_without_settlement_is_refused(store: Store) -> None:
    """A commit carrying claimed content that settles no claim raises UnsettledClaim."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    with pytest.raises(UnsettledClaim):
        store.commits.commit(
            append(sid, 0, lease.fence, [msg("n1", None)], carries_claimed_content=True)
        )
    assert store.sessions.record(sid).head_revision == 0


def test_replace_full_rewrites_the_graph(store: Store) -> None:
    """A replace_full delta deletes every stored node and writes exactly the given ones."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "n1", "n2", "n3")
    nodes = (msg("n1", None), msg("m2", "n1"))
    store.commits.commit(CommitDraft(sid, 1, lease.fence, GraphReplaceFull(nodes, "m2")))
    loaded = store.sessions.load(sid)
    assert set(loaded.graph.nodes) == {"n1", "m2"}
    assert loaded.record.leaf_node_id == "m2"


def test_unchanged_graph_commit_moves_head_only(store: Store) -> None:
    """A commit with an unchanged graph bumps the head revision and keeps every node."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "n1")
    assert store.commits.commit(unchanged(sid, 1, lease.fence, "n1")).head_revision == 2
    assert set(store.sessions.load(sid).graph.nodes) == {"n1"}
