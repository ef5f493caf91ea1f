"""Store conformance: pending turn input — idempotent enqueue, typed cancel, fenced claims."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from lash_tasks.errors import (
    LeaseLost,
    SessionNotFound,
    SourceKeyConflict,
    StaleClaim,
    UnknownBranchPoint,
    ValidationError,
)
from lash_tasks.machine import ClearActiveTurn, TurnStamp
from lash_tasks.store.records import CancelOutcome, InputClaim, InputDraft
from lash_tasks.store.schema import graph_nodes
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    SHORT_TTL_MS,
    append,
    commit_chain,
    completion,
    enqueue,
    msg,
    new_session,
    race,
    start_turn,
    states,
    take_lease,
    unchanged,
    wait_past_expiry,
)


def _claimed(store: Store, sid: str, lease_fence: object) -> InputClaim:
    claim = store.inputs.claim_next_turn(lease_fence)  # type: ignore[arg-type]
    assert claim is not None
    return claim


def _finish(store: Store, sid: str, fence: object, claim: InputClaim, head: int) -> None:
    """A final commit settling `claim`."""
    store.commits.commit(
        unchanged(
            sid,
            head,
            fence,  # type: ignore[arg-type]
            None,
            input_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
        )
    )


def test_source_key_is_idempotent_and_conflicts_on_changed_content(store: Store) -> None:
    """Same source key + content returns the existing row, even once terminal; changed content
    or ingress raises SourceKeyConflict; the same key in another session is independent."""
    sid = new_session(store)
    first = enqueue(store, sid, "k1", "hello")
    assert first.state == "pending" and first.ingress == "next_turn"
    assert enqueue(store, sid, "k1", "hello") == first
    with pytest.raises(SourceKeyConflict):
        enqueue(store, sid, "k1", "changed")
    with pytest.raises(SourceKeyConflict):
        enqueue(store, sid, "k1", "hello", ingress="active_turn")

    assert store.inputs.cancel(sid, input_id=first.input_id) == CancelOutcome.CANCELLED
    replay = enqueue(store, sid, "k1", "hello")
    assert replay.input_id == first.input_id and replay.state == "cancelled"

    other = new_session(store, "s2")
    elsewhere = enqueue(store, other, "k1", "something else")
    assert elsewhere.input_id != first.input_id
    assert len(store.inputs.list_all(sid)) == 1


def test_enqueue_is_ordered_and_validated(store: Store) -> None:
    """Inputs list in enqueue order; an empty source key or unknown ingress writes nothing."""
    sid = new_session(store)
    ids = [enqueue(store, sid, f"k{i}").input_id for i in range(3)]
    assert [i.input_id for i in store.inputs.list_pending(sid)] == ids
    with pytest.raises(ValidationError):
        store.inputs.enqueue(InputDraft(sid, "", {"text": "x"}))
    with pytest.raises(ValidationError):
        store.inputs.enqueue(InputDraft(sid, "k9", {"text": "x"}, ingress="sideways"))  # type: ignore[arg-type]
    assert len(store.inputs.list_all(sid)) == 3


def test_branch_from_an_unknown_node_is_refused_and_writes_nothing(store: Store) -> None:
    """An input branching from a node its session lacks (never written, another session's,
    or tombstoned) raises UnknownBranchPoint naming branch_from; a live node is accepted."""
    sid = new_session(store)
    other = new_session(store, "s2")
    commit_chain(store, take_lease(store, sid), "u1", "a1")
    commit_chain(store, take_lease(store, other), "x1")
    commit_chain(store, take_lease(store, sid), "b1")  # a1 leaves the active path ...
    n = graph_nodes
    with store.database.engine.begin() as conn:  # ... and is tombstoned
        conn.execute(update(n).where(n.c.node_id == "a1").values(tombstoned_at=1))
    for node in ("nowhere", "x1", "a1"):
        with pytest.raises(UnknownBranchPoint) as info:
            store.inputs.enqueue(InputDraft(sid, f"k-{node}", {"text": "x", "branch_from": node}))
        assert info.value.message.startswith("branch_from: ")
        assert node in info.value.message
    assert store.inputs.list_all(sid) == []
    row = store.inputs.enqueue(InputDraft(sid, "k-u1", {"text": "x", "branch_from": "u1"}))
    assert row.input["branch_from"] == "u1"


def test_enqueue_for_an_unknown_session_is_refused(store: Store) -> None:
    """Enqueueing for a session that does not exist raises SessionNotFound."""
    with pytest.raises(SessionNotFound):
        enqueue(store, "nope", "k1")


def test_cancel_returns_typed_outcomes(store: Store) -> None:
    """Cancel by id or source key: cancelled, already_cancelled, already_claimed,
    already_completed, not_found."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    done = enqueue(store, sid, "done")
    claim = _claimed(store, sid, lease.fence)
    _finish(store, sid, lease.fence, claim, 0)
    held = enqueue(store, sid, "held")
    _claimed(store, sid, lease.fence)
    free = enqueue(store, sid, "free")
    by_key = enqueue(store, sid, "by-key")

    assert store.inputs.cancel(sid, input_id=free.input_id) == CancelOutcome.CANCELLED
    assert store.inputs.cancel(sid, input_id=free.input_id) == CancelOutcome.ALREADY_CANCELLED
    assert store.inputs.cancel(sid, input_id=held.input_id) == CancelOutcome.ALREADY_CLAIMED
    assert store.inputs.cancel(sid, input_id=done.input_id) == CancelOutcome.ALREADY_COMPLETED
    assert store.inputs.cancel(sid, input_id="in_missing") == CancelOutcome.NOT_FOUND
    assert store.inputs.cancel(sid, source_key="by-key") == CancelOutcome.CANCELLED
    assert store.inputs.cancel(sid, source_key="by-key") == CancelOutcome.ALREADY_CANCELLED
    assert store.inputs.cancel(sid, source_key="missing") == CancelOutcome.NOT_FOUND
    assert states(store, sid) == {
        done.input_id: "completed",
        held.input_id: "claimed",
        free.input_id: "cancelled",
        by_key.input_id: "cancelled",
    }
    with pytest.raises(ValidationError):
        store.inputs.cancel(sid)
    with pytest.raises(ValidationError):
        store.inputs.cancel(sid, input_id=free.input_id, source_key="free")


def test_cancel_does_not_reach_into_another_session(store: Store) -> None:
    """Cancelling another session's input id is not_found and leaves it pending."""
    a = new_session(store, "a")
    b = new_session(store, "b")
    theirs = enqueue(store, b, "k1")
    assert store.inputs.cancel(a, input_id=theirs.input_id) == CancelOutcome.NOT_FOUND
    assert store.inputs.cancel(a, source_key="k1") == CancelOutcome.NOT_FOUND
    assert states(store, b) == {theirs.input_id: "pending"}


def test_cancel_of_a_dead_claim_succeeds(store: Store) -> None:
    """A row claimed under a lease that has since expired is cancellable."""
    sid = new_session(store)
    item = enqueue(store, sid, "k1")
    lease = take_lease(store, sid, ttl_ms=SHORT_TTL_MS)
    _claimed(store, sid, lease.fence)
    assert store.inputs.cancel(sid, input_id=item.input_id) == CancelOutcome.ALREADY_CLAIMED
    wait_past_expiry()
    assert store.inputs.cancel(sid, input_id=item.input_id) == CancelOutcome.CANCELLED


def test_bulk_cancel_reports_per_id_outcomes(store: Store) -> None:
    """cancel_inputs cancels every unclaimed listed row in one go and reports each outcome."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    held = enqueue(store, sid, "held")
    _claimed(store, sid, lease.fence)
    a = enqueue(store, sid, "a")
    b = enqueue(store, sid, "b")
    untouched = enqueue(store, sid, "c")
    outcomes = store.inputs.cancel_many(sid, [a.input_id, held.input_id, "missing", b.input_id])
    assert outcomes == {
        a.input_id: CancelOutcome.CANCELLED,
        held.input_id: CancelOutcome.ALREADY_CLAIMED,
        "missing": CancelOutcome.NOT_FOUND,
        b.input_id: CancelOutcome.CANCELLED,
    }
    assert states(store, sid)[untouched.input_id] == "pending"
    assert states(store, sid)[held.input_id] == "claimed"


def test_suffix_cancel_covers_the_anchor_and_every_later_row(store: Store) -> None:
    """cancel_input_suffix cancels the anchor and all later rows, and no earlier one."""
    sid = new_session(store)
    other = new_session(store, "other")
    rows = [enqueue(store, sid, f"k{i}") for i in range(5)]
    foreign = enqueue(store, other, "later-elsewhere")
    store.inputs.cancel(sid, input_id=rows[3].input_id)
    outcomes = store.inputs.cancel_suffix(sid, rows[2].input_id)
    assert outcomes == {
        rows[2].input_id: CancelOutcome.CANCELLED,
        rows[3].input_id: CancelOutcome.ALREADY_CANCELLED,
        rows[4].input_id: CancelOutcome.CANCELLED,
    }
    assert [i.input_id for i in store.inputs.list_pending(sid)] == [r.input_id for r in rows[:2]]
    assert states(store, other) == {foreign.input_id: "pending"}
    assert store.inputs.cancel_suffix(sid, "missing") == {"missing": CancelOutcome.NOT_FOUND}


def test_claim_takes_pending_inputs_in_order_up_to_the_limit(store: Store) -> None:
    """A claim takes the oldest waiting inputs, at most max_inputs; with no turn running a
    steer input waits like any other."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    rows = [enqueue(store, sid, f"k{i}") for i in range(4)]
    steer = enqueue(store, sid, "steer", ingress="active_turn")
    first = store.inputs.claim_next_turn(lease.fence, max_inputs=3)
    assert first is not None
    assert [i.input_id for i in first.inputs] == [r.input_id for r in rows[:3]]
    assert all(i.state == "claimed" and i.claim_id == first.claim_id for i in first.inputs)
    assert first.generation == lease.fencing_token
    second = store.inputs.claim_next_turn(lease.fence)
    assert second is not None
    assert [i.input_id for i in second.inputs] == [rows[3].input_id, steer.input_id]
    assert store.inputs.claim_next_turn(lease.fence) is None


def test_concurrent_claims_have_exactly_one_owner_per_row(store: Store) -> None:
    """Threads claiming with the same fence never claim one row twice."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    ids = {enqueue(store, sid, f"k{i}").input_id for i in range(12)}
    results = race(
        [lambda: store.inputs.claim_next_turn(lease.fence, max_inputs=3) for _ in range(6)]
    )
    claims = [r for r in results if isinstance(r, InputClaim)]
    assert all(r is None or isinstance(r, InputClaim) for r in results), results
    assert len(claims) == 4
    claimed = [i.input_id for c in claims for i in c.inputs]
    assert len(claimed) == len(set(claimed)) == len(ids)
    assert len({c.claim_id for c in claims}) == len(claims)
    by_row = {i.input_id: i.claim_id for i in store.inputs.list_all(sid)}
    for claim in claims:
        assert all(by_row[i.input_id] == claim.claim_id for i in claim.inputs)


def test_claims_are_superseded_across_lease_generations(store: Store) -> None:
    """Rows claimed under a dead generation are re-claimed as the same set by the next one,
    and the old generation's completion is refused."""
    sid = new_session(store)
    gen1 = take_lease(store, sid, "worker-a", ttl_ms=SHORT_TTL_MS)
    rows = [enqueue(store, sid, f"k{i}") for i in range(2)]
    old = _claimed(store, sid, gen1.fence)
    later = enqueue(store, sid, "later")
    wait_past_expiry()
    gen3 = take_lease(store, sid, "worker-b")
    assert gen3.fencing_token == gen1.fencing_token + 1

    new = _claimed(store, sid, gen3.fence)
    assert [i.input_id for i in new.inputs] == [r.input_id for r in rows]
    assert new.claim_id != old.claim_id and new.generation == gen3.fencing_token

    with pytest.raises(LeaseLost):
        _finish(store, sid, gen1.fence, old, 0)
    with pytest.raises(StaleClaim):
        _finish(store, sid, gen3.fence, old, 0)
    assert store.sessions.record(sid).head_revision == 0

    _finish(store, sid, gen3.fence, new, 0)
    assert states(store, sid) == {
        rows[0].input_id: "completed",
        rows[1].input_id: "completed",
        later.input_id: "pending",
    }


def test_same_generation_cannot_steal_its_own_claim(store: Store) -> None:
    """A live claim is not re-claimed by the same lease generation."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    enqueue(store, sid, "k1")
    _claimed(store, sid, lease.fence)
    assert store.inputs.claim_next_turn(lease.fence) is None


def test_abandoned_claim_returns_rows_to_pending(store: Store) -> None:
    """Abandoning a claim makes its rows pending again and claimable by the same lease."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    item = enqueue(store, sid, "k1")
    claim = _claimed(store, sid, lease.fence)
    assert store.inputs.abandon_claim(lease.fence, claim.claim_id) == 1
    assert states(store, sid) == {item.input_id: "pending"}
    again = _claimed(store, sid, lease.fence)
    assert [i.input_id for i in again.inputs] == [item.input_id]


def test_list_pending_hides_terminal_and_live_claimed_rows(store: Store) -> None:
    """list_pending_inputs shows only waiting rows: no terminal rows, no live claims; rows of a
    dead claim show again."""
    sid = new_session(store)
    lease = take_lease(store, sid, ttl_ms=SHORT_TTL_MS)
    claimed = enqueue(store, sid, "claimed")
    _claimed(store, sid, lease.fence)
    cancelled = enqueue(store, sid, "cancelled")
    store.inputs.cancel(sid, input_id=cancelled.input_id)
    waiting = enqueue(store, sid, "waiting")
    steer = enqueue(store, sid, "steer", ingress="active_turn")
    assert [i.input_id for i in store.inputs.list_pending(sid)] == [
        waiting.input_id,
        steer.input_id,
    ]
    pending_by_id = {i.input_id: i for i in store.inputs.list_pending(sid)}
    assert pending_by_id[steer.input_id].state == "pending_active"

    wait_past_expiry()
    assert claimed.input_id in {i.input_id for i in store.inputs.list_pending(sid)}


def test_list_pending_hides_rows_held_by_the_active_turn(store: Store) -> None:
    """Rows claimed by a committed active turn stay hidden (and uncancellable) after the lease
    is released: the turn, not the lease, holds them."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    held = enqueue(store, sid, "held")
    claim = _claimed(store, sid, lease.fence)
    store.commits.commit(
        append(
            sid,
            0,
            lease.fence,
            [msg("u1", None)],
            active_turn=start_turn("turn-1", claim.claim_id),
            carries_claimed_content=True,
            release_lease=True,
        )
    )
    assert store.leases.state(sid)[0] is None
    waiting = enqueue(store, sid, "waiting")
    assert [i.input_id for i in store.inputs.list_pending(sid)] == [waiting.input_id]
    assert store.inputs.cancel(sid, input_id=held.input_id) == CancelOutcome.ALREADY_CLAIMED

    # A new lease generation does not re-claim the active turn's rows as a new turn.
    gen2 = take_lease(store, sid, "worker-b")
    next_claim = _claimed(store, sid, gen2.fence)
    assert [i.input_id for i in next_claim.inputs] == [waiting.input_id]


def test_resumed_turn_settles_its_claim_under_a_new_generation(store: Store) -> None:
    """A turn that continues on a new lease generation can complete the claim its active turn
    holds (continuing durable work, not stealing it)."""
    sid = new_session(store)
    gen1 = take_lease(store, sid, "worker-a", ttl_ms=SHORT_TTL_MS)
    item = enqueue(store, sid, "k1")
    claim = _claimed(store, sid, gen1.fence)
    store.commits.commit(
        append(
            sid,
            0,
            gen1.fence,
            [msg("u1", None)],
            active_turn=start_turn("turn-1", claim.claim_id),
            carries_claimed_content=True,
        )
    )
    wait_past_expiry()
    gen3 = take_lease(store, sid, "worker-b")
    assert gen3.fencing_token == gen1.fencing_token + 1
    result = store.commits.commit(
        append(
            sid,
            1,
            gen3.fence,
            [msg("a1", "u1", role="assistant")],
            input_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
            turn_stamp=TurnStamp("turn-1", "f" * 64, {}),
        )
    )
    assert result.head_revision == 2
    assert states(store, sid) == {item.input_id: "completed"}


def test_unaccepted_steer_inputs_are_deferred_by_the_final_commit(store: Store) -> None:
    """A final commit with defer_active_inputs turns unaccepted steer input into next-turn input
    (once); accepted steer input completes with the turn's claim."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    first = enqueue(store, sid, "first")
    claim = _claimed(store, sid, lease.fence)
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
    accepted = enqueue(store, sid, "steer-1", ingress="active_turn")
    taken = store.inputs.accept_active(lease.fence, claim.claim_id, "turn-1")
    assert [i.input_id for i in taken] == [accepted.input_id]
    late = enqueue(store, sid, "steer-2", ingress="active_turn")
    assert states(store, sid)[accepted.input_id] == "accepted"
    assert states(store, sid)[late.input_id] == "pending_active"

    store.commits.commit(
        unchanged(
            sid,
            1,
            lease.fence,
            "u1",
            input_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
            defer_active_inputs=True,
        )
    )
    rows = {i.input_id: i for i in store.inputs.list_all(sid)}
    assert rows[first.input_id].state == "completed"
    assert rows[accepted.input_id].state == "completed"
    assert rows[late.input_id].state == "pending"
    assert rows[late.input_id].ingress == "next_turn"
    next_turn = _claimed(store, sid, lease.fence)
    assert [i.input_id for i in next_turn.inputs] == [late.input_id]


def test_final_commit_without_defer_leaves_steer_input_alone(store: Store) -> None:
    """Without defer_active_inputs a commit does not touch pending_active rows."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    steer = enqueue(store, sid, "steer", ingress="active_turn")
    store.commits.commit(unchanged(sid, 0, lease.fence, None))
    assert states(store, sid) == {steer.input_id: "pending_active"}


def test_accept_ignores_a_claim_id_of_another_session(store: Store) -> None:
    """Accepting steer input into a claim id that belongs to another session accepts nothing."""
    a = new_session(store, "a")
    b = new_session(store, "b")
    lease_a = take_lease(store, a)
    lease_b = take_lease(store, b)
    enqueue(store, a, "k1")
    foreign = _claimed(store, a, lease_a.fence)
    steer = enqueue(store, b, "steer", ingress="active_turn")
    assert store.inputs.accept_active(lease_b.fence, foreign.claim_id, "turn-b") == []
    assert states(store, b) == {steer.input_id: "pending_active"}


def test_restamp_carries_the_active_turns_claims_into_a_new_generation(store: Store) -> None:
    """restamp_turn_claims moves the active turn's claims to the new fence (same claim id and
    token); a stale fence cannot re-stamp."""
    sid = new_session(store)
    gen1 = take_lease(store, sid, "worker-a", ttl_ms=SHORT_TTL_MS)
    item = enqueue(store, sid, "k1")
    claim = _claimed(store, sid, gen1.fence)
    store.commits.commit(
        unchanged(sid, 0, gen1.fence, None, active_turn=start_turn("turn-1", claim.claim_id))
    )
    wait_past_expiry()
    gen2 = take_lease(store, sid, "worker-b")
    with pytest.raises(LeaseLost):
        store.turns.restamp_claims(gen1.fence, claim.claim_id, None)
    store.turns.restamp_claims(gen2.fence, claim.claim_id, None)
    assert store.inputs.get(sid, item.input_id).claim_id == claim.claim_id  # type: ignore[union-attr]
    assert store.inputs.list_pending(sid) == []
    _finish(store, sid, gen2.fence, claim, 1)
    assert states(store, sid) == {item.input_id: "completed"}
