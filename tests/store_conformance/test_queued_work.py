"""Store conformance: queued work — idempotent enqueue, class gating, joins, fenced claims."""

from __future__ import annotations

import pytest

from lash_tasks.errors import LeaseLost, SourceKeyConflict, StaleClaim, ValidationError
from lash_tasks.machine import ClearActiveTurn, QueuedWorkDraft
from lash_tasks.store.records import QueueClaim
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    SHORT_TTL_MS,
    command,
    completion,
    new_session,
    race,
    start_turn,
    take_lease,
    turn_work,
    unchanged,
    wait_past_expiry,
)


def _keys(claim: QueueClaim | None) -> list[str]:
    assert claim is not None
    return [b.source_key for b in claim.batches]


def _settle(store: Store, sid: str, fence: object, claim: QueueClaim, head: int) -> None:
    store.commits.commit(
        unchanged(sid, head, fence, None, queue_completions=(completion(claim),))  # type: ignore[arg-type]
    )


def test_source_key_is_idempotent_and_conflicts_on_changed_content(store: Store) -> None:
    """Same source key + content returns the existing batch; changed content raises
    SourceKeyConflict; the same key in another session is a separate batch."""
    sid = new_session(store)
    first = store.queue.enqueue(sid, turn_work("wake-1"))
    assert first.state == "ready" and first.work_class == "turn_work"
    assert first.payloads == ({"type": "process_wake", "wake": "wake-1"},)
    assert store.queue.enqueue(sid, turn_work("wake-1")) == first
    with pytest.raises(SourceKeyConflict):
        store.queue.enqueue(sid, turn_work("wake-1", slot="join"))
    changed = QueuedWorkDraft("wake-1", "turn_work", ({"type": "process_wake", "wake": "x"},))
    with pytest.raises(SourceKeyConflict):
        store.queue.enqueue(sid, changed)
    assert [b.batch_id for b in store.queue.list_batches(sid)] == [first.batch_id]

    other = new_session(store, "s2")
    elsewhere = store.queue.enqueue(other, turn_work("wake-1"))
    assert elsewhere.batch_id != first.batch_id


def test_enqueue_validates_the_draft(store: Store) -> None:
    """A batch without source key or payloads, or of an unknown class or slot, writes nothing."""
    sid = new_session(store)
    bad = [
        QueuedWorkDraft("", "turn_work", ({"a": 1},)),
        QueuedWorkDraft("k", "turn_work", ()),
        QueuedWorkDraft("k", "bogus", ({"a": 1},)),  # type: ignore[arg-type]
        QueuedWorkDraft("k", "turn_work", ({"a": 1},), slot_policy="bogus"),  # type: ignore[arg-type]
    ]
    for draft in bad:
        with pytest.raises(ValidationError):
            store.queue.enqueue(sid, draft)
    assert store.queue.list_batches(sid, include_done=True) == []


def test_session_commands_gate_turn_work_and_drain_one_at_a_time(store: Store) -> None:
    """While a command leads, turn work is not claimable; commands are claimed exactly one at a
    time, each settled before the next."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    for draft in (command("c1"), command("c2"), turn_work("w1")):
        store.queue.enqueue(sid, draft)

    assert store.queue.claim_turn_work(lease.fence) is None
    first = store.queue.claim_leading_command(lease.fence)
    assert _keys(first) == ["c1"]
    assert store.queue.claim_turn_work(lease.fence) is None
    _settle(store, sid, lease.fence, first, 0)  # type: ignore[arg-type]

    second = store.queue.claim_leading_command(lease.fence)
    assert _keys(second) == ["c2"]
    _settle(store, sid, lease.fence, second, 1)  # type: ignore[arg-type]

    assert store.queue.claim_leading_command(lease.fence) is None
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["w1"]


def test_live_claimed_command_is_not_claimed_again(store: Store) -> None:
    """A command claimed by the live generation is not handed out a second time."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.queue.enqueue(sid, command("c1"))
    store.queue.enqueue(sid, command("c2"))
    assert _keys(store.queue.claim_leading_command(lease.fence)) == ["c1"]
    # c2 now heads the claimable queue; c1 stays with its claim.
    assert _keys(store.queue.claim_leading_command(lease.fence)) == ["c2"]
    assert store.queue.claim_leading_command(lease.fence) is None


def test_join_batches_with_one_merge_key_are_claimed_together(store: Store) -> None:
    """Join batches sharing a merge key are claimed as one claim; an exclusive batch alone; a
    different merge key or a command ends the run."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    for draft in (
        turn_work("j1", "join", "m"),
        turn_work("j2", "join", "m"),
        turn_work("j3", "join", "m"),
        turn_work("k1", "join", "other"),
        turn_work("x1", "exclusive"),
        turn_work("x2", "exclusive"),
        turn_work("j4", "join", "m"),
        command("c1"),
        turn_work("j5", "join", "m"),
    ):
        store.queue.enqueue(sid, draft)

    joined = store.queue.claim_turn_work(lease.fence)
    assert _keys(joined) == ["j1", "j2", "j3"]
    assert len({b.batch_id for b in joined.batches}) == 3  # type: ignore[union-attr]
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["k1"]
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["x1"]
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["x2"]
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["j4"]
    assert store.queue.claim_turn_work(lease.fence) is None
    assert _keys(store.queue.claim_leading_command(lease.fence)) == ["c1"]
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["j5"]


def test_join_claim_respects_max_batches(store: Store) -> None:
    """A join run longer than max_batches is split across claims."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    for i in range(5):
        store.queue.enqueue(sid, turn_work(f"j{i}", "join", "m"))
    assert _keys(store.queue.claim_turn_work(lease.fence, max_batches=2)) == ["j0", "j1"]
    assert _keys(store.queue.claim_turn_work(lease.fence, max_batches=2)) == ["j2", "j3"]
    assert _keys(store.queue.claim_turn_work(lease.fence, max_batches=2)) == ["j4"]


def test_delayed_work_is_not_claimed_before_it_is_available(store: Store) -> None:
    """A batch enqueued with a delay is not claimable until its available time."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.queue.enqueue(sid, turn_work("later", delay_ms=60_000))
    assert store.queue.claim_turn_work(lease.fence) is None
    store.queue.enqueue(sid, turn_work("now"))
    assert _keys(store.queue.claim_turn_work(lease.fence)) == ["now"]


def test_cancel_removes_only_unclaimed_batches(store: Store) -> None:
    """cancel_queued_work cancels a ready batch, refuses a live-claimed, finished or unknown one."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    claimed = store.queue.enqueue(sid, turn_work("claimed"))
    claim = store.queue.claim_turn_work(lease.fence)
    assert _keys(claim) == ["claimed"]
    ready = store.queue.enqueue(sid, turn_work("ready"))

    assert store.queue.cancel(sid, claimed.batch_id) is False
    assert store.queue.cancel(sid, ready.batch_id) is True
    assert store.queue.cancel(sid, ready.batch_id) is False
    assert store.queue.cancel(sid, "qwb:missing") is False
    assert store.queue.cancel("other", claimed.batch_id) is False
    assert [b.source_key for b in store.queue.list_batches(sid)] == ["claimed"]

    _settle(store, sid, lease.fence, claim, 0)  # type: ignore[arg-type]
    assert store.queue.cancel(sid, claimed.batch_id) is False
    done = {b.source_key: b.state for b in store.queue.list_batches(sid, include_done=True)}
    assert done == {"claimed": "completed", "ready": "cancelled"}


def test_cancel_of_a_dead_generation_claim_succeeds(store: Store) -> None:
    """A batch whose claim belongs to an expired lease is cancellable."""
    sid = new_session(store)
    lease = take_lease(store, sid, ttl_ms=SHORT_TTL_MS)
    batch = store.queue.enqueue(sid, turn_work("w1"))
    assert store.queue.claim_turn_work(lease.fence) is not None
    wait_past_expiry()
    assert store.queue.cancel(sid, batch.batch_id) is True


def test_concurrent_claims_have_exactly_one_owner_per_batch(store: Store) -> None:
    """Threads claiming turn work with the same fence never claim one batch twice."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    for i in range(8):
        store.queue.enqueue(sid, turn_work(f"w{i}"))
    results = race([lambda: store.queue.claim_turn_work(lease.fence) for _ in range(10)])
    assert all(r is None or isinstance(r, QueueClaim) for r in results), results
    claims = [r for r in results if isinstance(r, QueueClaim)]
    batches = [b.batch_id for c in claims for b in c.batches]
    assert len(batches) == len(set(batches)) == 8
    assert results.count(None) == 2


def test_queue_claims_are_superseded_across_lease_generations(store: Store) -> None:
    """A dead generation's claim is re-claimed by the next generation as the same set (even if
    more joinable work arrived), and the old claim's completion is refused."""
    sid = new_session(store)
    gen1 = take_lease(store, sid, "worker-a", ttl_ms=SHORT_TTL_MS)
    store.queue.enqueue(sid, turn_work("j1", "join", "m"))
    store.queue.enqueue(sid, turn_work("j2", "join", "m"))
    old = store.queue.claim_turn_work(gen1.fence)
    assert _keys(old) == ["j1", "j2"]
    store.queue.enqueue(sid, turn_work("j3", "join", "m"))
    wait_past_expiry()
    gen2 = take_lease(store, sid, "worker-b")
    assert gen2.fencing_token == gen1.fencing_token + 1

    new = store.queue.claim_turn_work(gen2.fence)
    assert _keys(new) == ["j1", "j2"]
    assert new.claim_id != old.claim_id  # type: ignore[union-attr]

    with pytest.raises(LeaseLost):
        _settle(store, sid, gen1.fence, old, 0)  # type: ignore[arg-type]
    with pytest.raises(StaleClaim):
        _settle(store, sid, gen2.fence, old, 0)  # type: ignore[arg-type]
    _settle(store, sid, gen2.fence, new, 0)  # type: ignore[arg-type]
    assert [b.source_key for b in store.queue.list_batches(sid)] == ["j3"]


def test_queue_claim_held_by_the_active_turn_survives_a_new_generation(store: Store) -> None:
    """Batches claimed by a committed active turn are not re-claimed by a later generation, and
    that turn settles them under the new fence."""
    sid = new_session(store)
    gen1 = take_lease(store, sid, "worker-a", ttl_ms=SHORT_TTL_MS)
    store.queue.enqueue(sid, turn_work("w1"))
    claim = store.queue.claim_turn_work(gen1.fence)
    assert claim is not None
    store.commits.commit(
        unchanged(sid, 0, gen1.fence, None, active_turn=start_turn("turn-q", None, claim.claim_id))
    )
    store.queue.enqueue(sid, turn_work("w2"))
    wait_past_expiry()
    gen2 = take_lease(store, sid, "worker-b")
    assert _keys(store.queue.claim_turn_work(gen2.fence)) == ["w2"]
    store.commits.commit(
        unchanged(
            sid,
            1,
            gen2.fence,
            None,
            queue_completions=(completion(claim),),
            active_turn=ClearActiveTurn(),
        )
    )
    states = {b.source_key: b.state for b in store.queue.list_batches(sid, include_done=True)}
    assert states == {"w1": "completed", "w2": "claimed"}


def test_queue_completion_is_lease_guarded_and_atomic(store: Store) -> None:
    """A completion with a wrong token is refused and leaves the batch claimed."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.queue.enqueue(sid, turn_work("w1"))
    claim = store.queue.claim_turn_work(lease.fence)
    assert claim is not None
    forged = QueueClaim(claim.claim_id, "forged", claim.generation, claim.batches)
    with pytest.raises(StaleClaim):
        _settle(store, sid, lease.fence, forged, 0)
    assert [b.state for b in store.queue.list_batches(sid)] == ["claimed"]
    assert store.sessions.record(sid).head_revision == 0
