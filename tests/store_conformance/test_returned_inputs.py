"""Store conformance: a final commit returns the steer inputs its turn never answered to
pending, in the same transaction that completes the rest of the turn's claim."""

from __future__ import annotations

import pytest

from lash_tasks.errors import LeaseLost
from lash_tasks.machine import ClearActiveTurn
from lash_tasks.store.records import InputClaim
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    append,
    completion,
    enqueue,
    expire_soon,
    msg,
    new_session,
    start_turn,
    take_lease,
    unchanged,
)


def running_turn(store: Store, sid: str, fence: object) -> InputClaim:
    """A turn with one claimed input, committed once, so steer input can join it."""
    enqueue(store, sid, "first")
    claim = store.inputs.claim_next_turn(fence)  # type: ignore[arg-type]
    assert claim is not None
    store.commits.commit(
        append(
            sid,
            0,
            fence,  # type: ignore[arg-type]
            [msg("u1", None)],
            active_turn=start_turn("turn-1", claim.claim_id),
            carries_claimed_content=True,
        )
    )
    return claim


def test_returned_steer_input_is_pending_again_and_the_rest_completes(store: Store) -> None:
    """returned_input_ids: those accepted inputs become pending next-turn input with no claim;
    the turn's other inputs (claimed and accepted) complete; the next turn claims the returned
    one."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    claim = running_turn(store, sid, lease.fence)
    answered = enqueue(store, sid, "steer-1", ingress="active_turn")
    unanswered = enqueue(store, sid, "steer-2", ingress="active_turn")
    store.inputs.accept_active(lease.fence, claim.claim_id, "turn-1")

    store.commits.commit(
        unchanged(
            sid,
            1,
            lease.fence,
            "u1",
            input_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
            defer_active_inputs=True,
            returned_input_ids=(unanswered.input_id,),
        )
    )

    rows = {i.input_id: i for i in store.inputs.list_all(sid)}
    assert [rows[i].state for i in rows if i not in (answered.input_id, unanswered.input_id)] == [
        "completed"
    ]
    assert rows[answered.input_id].state == "completed"
    returned = rows[unanswered.input_id]
    assert (returned.state, returned.ingress, returned.claim_id, returned.turn_id) == (
        "pending",
        "next_turn",
        None,
        None,
    )
    next_turn = store.inputs.claim_next_turn(lease.fence)
    assert next_turn is not None
    assert [i.input_id for i in next_turn.inputs] == [unanswered.input_id]


def test_returning_inputs_is_part_of_the_fenced_commit(store: Store) -> None:
    """A stale fence's final commit is refused whole: the accepted input stays accepted."""
    sid = new_session(store)
    stale = expire_soon(store, sid)
    lease = take_lease(store, sid, "worker-b")
    claim = running_turn(store, sid, lease.fence)
    steer = enqueue(store, sid, "steer-1", ingress="active_turn")
    store.inputs.accept_active(lease.fence, claim.claim_id, "turn-1")

    with pytest.raises(LeaseLost):
        store.commits.commit(
            unchanged(
                sid,
                1,
                stale.fence,
                "u1",
                input_completions=(completion(claim),),
                active_turn=ClearActiveTurn(),
                returned_input_ids=(steer.input_id,),
            )
        )
    assert store.inputs.get(sid, steer.input_id).state == "accepted"  # type: ignore[union-attr]


def test_only_accepted_inputs_of_the_session_are_returned(store: Store) -> None:
    """Ids of another session's inputs, or of inputs not accepted, are left as they are."""
    sid = new_session(store)
    other = new_session(store, "s2")
    lease = take_lease(store, sid)
    claim = running_turn(store, sid, lease.fence)
    foreign = enqueue(store, other, "theirs")
    waiting = enqueue(store, sid, "steer-late", ingress="active_turn")

    store.commits.commit(
        unchanged(
            sid,
            1,
            lease.fence,
            "u1",
            input_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
            returned_input_ids=(foreign.input_id, waiting.input_id),
        )
    )
    assert store.inputs.get(other, foreign.input_id).state == "pending"  # type: ignore[union-attr]
    assert store.inputs.get(sid, waiting.input_id).state == "pending_active"  # type: ignore[union-attr]
