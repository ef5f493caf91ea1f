"""Store conformance: work queued for the earliest safe boundary joins the running turn when
its next step opens (lash's checkpoint claim), and its final commit settles or returns it."""

from __future__ import annotations

import dataclasses

from lash_tasks.machine import ClearActiveTurn, QueuedWorkDraft
from lash_tasks.store.records import Busy
from lash_tasks.store.step_records import OpenedStep, OpenRequest
from lash_tasks.store.store import Store
from lash_tasks.store.work_queue import QueueState
from tests.store_conformance.support import (
    SHORT_TTL_MS,
    command,
    completion,
    enqueue,
    new_session,
    turn_work,
    unchanged,
    wait_past_expiry,
)


def boundary(key: str) -> QueuedWorkDraft:
    return dataclasses.replace(turn_work(key), delivery_policy="earliest_safe_boundary")


def open_step(
    store: Store, sid: str, *, incarnation: str = "inc-1", ttl_ms: int = 30_000
) -> OpenedStep:
    opened = store.steps.open(
        OpenRequest(sid, "worker-a", incarnation, ttl_ms), lambda _opened: None
    )
    assert not isinstance(opened, Busy)
    return opened


def running_turn(store: Store, sid: str, **kwargs: object) -> OpenedStep:
    """A session whose turn (from one input) is running: its first step has opened."""
    enqueue(store, sid, "first")
    opened = open_step(store, sid, **kwargs)  # type: ignore[arg-type]
    assert opened.work == "turn" and opened.new_turn
    return opened


def batch_states(store: Store, sid: str) -> dict[str, str]:
    return {b.source_key: b.state for b in store.queue.list_batches(sid, include_done=True)}


def final_commit(
    store: Store,
    opened: OpenedStep,
    *,
    settle_queue: bool = True,
    returned_batch_ids: tuple[str, ...] = (),
) -> None:
    """The turn's final commit, settling its input claim (and its queue claim)."""
    turn = opened.turn
    assert turn is not None and turn.input_claim is not None and turn.queue_claim is not None
    claims = (turn.queue_claim,) if settle_queue else ()
    store.commits.commit(
        unchanged(
            opened.record.session_id,
            opened.record.head_revision,
            opened.lease.fence,
            opened.record.leaf_node_id,
            active_turn=ClearActiveTurn(),
            input_completions=(completion(turn.input_claim),),
            queue_completions=tuple(completion(c) for c in claims),
            carries_claimed_content=True,
            returned_batch_ids=returned_batch_ids,
        )
    )


def test_boundary_work_joins_the_running_turn_under_a_new_queue_claim(store: Store) -> None:
    """A ready earliest_safe_boundary batch is taken by the next step of the running turn,
    under a queue claim recorded on the active turn; after_current_turn work is not."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, boundary("wake-1"))

    opened = open_step(store, sid)

    assert opened.turn is not None and opened.turn.queue_claim is not None
    assert [b.source_key for b in opened.wakes] == ["wake-1"]
    assert opened.wakes_accepted_now == tuple(b.batch_id for b in opened.wakes)
    assert opened.wakes[0].payloads == ({"type": "process_wake", "wake": "wake-1"},)
    assert store.turns.active(sid) == opened.turn
    assert batch_states(store, sid) == {"wake-1": QueueState.CLAIMED}


def test_after_current_turn_work_waits_and_blocks_the_boundary_work_behind_it(
    store: Store,
) -> None:
    """Work queued for after the turn keeps its place: boundary work behind it waits too,
    and so does boundary work behind a session command."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, turn_work("after"))
    store.queue.enqueue(sid, boundary("wake-1"))

    opened = open_step(store, sid)

    assert opened.wakes == () and opened.turn is not None and opened.turn.queue_claim is None
    assert batch_states(store, sid) == {"after": "ready", "wake-1": "ready"}

    other = new_session(store, "s2")
    running_turn(store, other)
    store.queue.enqueue(other, command("cmd"))
    store.queue.enqueue(other, boundary("wake-2"))
    assert open_step(store, other).wakes == ()


def test_a_rerun_step_lists_taken_work_again_and_takes_more_under_the_same_claim(
    store: Store,
) -> None:
    """A re-run step (the worker died before closing) finds the batch it took, names no new
    one, and the turn's later steps add batches to the same claim."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, boundary("wake-1"))
    first = open_step(store, sid)

    again = open_step(store, sid)
    assert [b.source_key for b in again.wakes] == ["wake-1"]
    assert again.wakes_accepted_now == ()

    store.queue.enqueue(sid, boundary("wake-2"))
    later = open_step(store, sid)
    assert [b.source_key for b in later.wakes] == ["wake-1", "wake-2"]
    assert later.turn is not None and first.turn is not None
    assert later.turn.queue_claim == first.turn.queue_claim


def test_taken_work_stays_with_the_turn_under_a_new_lease_generation(store: Store) -> None:
    """A turn resumed by another incarnation (the first one's lease expired) still holds the
    batch it took: nobody else can claim or cancel it."""
    sid = new_session(store)
    running_turn(store, sid, ttl_ms=SHORT_TTL_MS)
    store.queue.enqueue(sid, boundary("wake-1"))
    open_step(store, sid, ttl_ms=SHORT_TTL_MS)
    wait_past_expiry()

    resumed = open_step(store, sid, incarnation="inc-2")

    assert [b.source_key for b in resumed.wakes] == ["wake-1"]
    assert resumed.wakes_accepted_now == ()
    assert store.queue.cancel(sid, resumed.wakes[0].batch_id) is False
    assert batch_states(store, sid) == {"wake-1": "claimed"}


def test_final_commit_settles_the_taken_work_with_the_turn(store: Store) -> None:
    """The turn's final commit completes the batches it took at its boundaries."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, boundary("wake-1"))
    opened = open_step(store, sid)

    final_commit(store, opened)

    assert batch_states(store, sid) == {"wake-1": "completed"}
    assert store.turns.active(sid) is None


def test_returned_work_is_ready_again_for_the_next_turn(store: Store) -> None:
    """returned_batch_ids (the model never saw them): ready again with no claim, in the same
    commit that ends the turn; the next step begins a turn with them."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, boundary("wake-1"))
    opened = open_step(store, sid)
    batch_id = opened.wakes[0].batch_id

    final_commit(store, opened, returned_batch_ids=(batch_id,), settle_queue=False)

    assert batch_states(store, sid) == {"wake-1": "ready"}
    after = open_step(store, sid)
    assert after.new_turn and after.turn is not None
    assert after.turn.batch_ids == (batch_id,)


def test_a_cancelled_turn_takes_no_boundary_work(store: Store) -> None:
    """A turn asked to stop takes no new work at its boundary (its final commit is near)."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, boundary("wake-1"))
    assert store.turns.request_cancel(sid)

    opened = open_step(store, sid)

    assert opened.wakes == ()
    assert batch_states(store, sid) == {"wake-1": "ready"}


def test_a_turn_without_a_lease_takes_nothing(store: Store) -> None:
    """Another worker's step is busy: nothing is taken, nothing changes."""
    sid = new_session(store)
    running_turn(store, sid)
    store.queue.enqueue(sid, boundary("wake-1"))
    busy = store.steps.open(OpenRequest(sid, "worker-b", "inc-9", 30_000), lambda _o: None)
    assert isinstance(busy, Busy)
    assert batch_states(store, sid) == {"wake-1": "ready"}
