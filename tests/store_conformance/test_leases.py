"""Store conformance: the session execution lease and its fencing token."""

from __future__ import annotations

import pytest

from lash_tasks.errors import LeaseLost, SessionNotFound, ValidationError
from lash_tasks.store.records import Busy, Lease
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    SHORT_TTL_MS,
    append,
    commit_chain,
    expire_soon,
    msg,
    new_session,
    race,
    take_lease,
    wait_past_expiry,
)


def test_same_incarnation_reenters_keeping_token_and_fence(store: Store) -> None:
    """Re-claiming with the same owner and incarnation extends the lease, same token and fence."""
    sid = new_session(store)
    first = take_lease(store, sid, ttl_ms=10_000)
    again = take_lease(store, sid, ttl_ms=30_000)
    assert again.lease_token == first.lease_token
    assert again.fencing_token == first.fencing_token == 1
    assert again.claimed_at == first.claimed_at
    assert again.expires_at > first.expires_at
    assert store.leases.state(sid) == (first.owner_id, 1, again.expires_at)


def test_other_owner_or_new_incarnation_is_busy_with_holder_info(store: Store) -> None:
    """While a lease is live, another owner or a new incarnation of the same owner gets Busy."""
    sid = new_session(store)
    held = take_lease(store, sid, "worker-a", "inc-1")
    for owner, incarnation in (("worker-b", "inc-9"), ("worker-a", "inc-2")):
        busy = store.leases.try_claim(sid, owner, incarnation)
        assert isinstance(busy, Busy)
        assert busy.session_id == sid
        assert busy.holder_owner_id == "worker-a"
        assert busy.expires_at == held.expires_at
        assert 0 < busy.retry_after_ms <= 30_000
    assert store.leases.state(sid)[:2] == ("worker-a", 1)


def test_expired_lease_goes_to_a_new_owner_with_the_next_fencing_token(store: Store) -> None:
    """After expiry a new owner acquires with fencing token + 1 and a fresh lease token."""
    sid = new_session(store)
    old = expire_soon(store, sid, "worker-a")
    new = take_lease(store, sid, "worker-b")
    assert new.fencing_token == old.fencing_token + 1
    assert new.lease_token != old.lease_token


def test_stale_renew_raises_lease_lost(store: Store) -> None:
    """Renewing an expired or taken-over lease raises LeaseLost; a live one extends."""
    sid = new_session(store)
    live = take_lease(store, sid, ttl_ms=10_000)
    assert store.leases.renew(live.fence, ttl_ms=20_000) > live.expires_at
    store.leases.release(live.fence)

    old = expire_soon(store, sid, "worker-a")
    with pytest.raises(LeaseLost):
        store.leases.renew(old.fence)
    take_lease(store, sid, "worker-b")
    with pytest.raises(LeaseLost):
        store.leases.renew(old.fence)


def test_stale_release_is_a_noop_that_keeps_the_newer_owner(store: Store) -> None:
    """Releasing an old fence after a takeover changes nothing; releasing twice is harmless."""
    sid = new_session(store)
    old = expire_soon(store, sid, "worker-a")
    new = take_lease(store, sid, "worker-b")
    assert store.leases.release(old.fence) is False
    assert store.leases.state(sid) == ("worker-b", new.fencing_token, new.expires_at)
    assert store.leases.release(new.fence) is True
    assert store.leases.release(new.fence) is False
    assert store.leases.state(sid)[0] is None


def test_fencing_token_survives_release(store: Store) -> None:
    """Release keeps the fencing token; the next acquisition, by anyone, gets token + 1."""
    sid = new_session(store)
    first = take_lease(store, sid, "worker-a")
    store.leases.release(first.fence)
    assert store.leases.state(sid) == (None, 1, None)
    second = take_lease(store, sid, "worker-a")
    assert second.fencing_token == 2
    assert second.lease_token != first.lease_token
    store.leases.release(second.fence)
    assert take_lease(store, sid, "worker-b").fencing_token == 3


def test_released_or_expired_fence_cannot_commit(store: Store) -> None:
    """A commit under a released, expired or superseded fence is refused with LeaseLost."""
    sid = new_session(store)
    released = take_lease(store, sid)
    store.leases.release(released.fence)
    with pytest.raises(LeaseLost):
        store.commits.commit(append(sid, 0, released.fence, [msg("n1", None)]))

    expired = expire_soon(store, sid)
    with pytest.raises(LeaseLost):
        store.commits.commit(append(sid, 0, expired.fence, [msg("n1", None)]))

    current = take_lease(store, sid, "worker-b")
    with pytest.raises(LeaseLost):
        store.commits.commit(append(sid, 0, expired.fence, [msg("n1", None)]))
    assert store.sessions.record(sid).head_revision == 0
    assert commit_chain(store, current, "n1").head_revision == 1


def test_queue_claims_with_a_released_fence_are_refused(store: Store) -> None:
    """Claiming inputs or queued work with a released fence raises LeaseLost."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.leases.release(lease.fence)
    with pytest.raises(LeaseLost):
        store.inputs.claim_next_turn(lease.fence)
    with pytest.raises(LeaseLost):
        store.queue.claim_turn_work(lease.fence)
    with pytest.raises(LeaseLost):
        store.queue.claim_leading_command(lease.fence)


def test_concurrent_first_claims_yield_exactly_one_lease(store: Store) -> None:
    """Several owners racing for a fresh session's lease: exactly one Lease, the rest Busy."""
    sid = new_session(store)
    owners = [f"worker-{i}" for i in range(4)]
    results = race(
        [lambda o=o: store.leases.try_claim(sid, o, "inc") for o in owners]  # type: ignore[misc]
    )
    leases = [r for r in results if isinstance(r, Lease)]
    busy = [r for r in results if isinstance(r, Busy)]
    assert len(leases) == 1 and len(busy) == len(owners) - 1, results
    assert leases[0].fencing_token == 1
    assert all(b.holder_owner_id == leases[0].owner_id for b in busy)
    assert store.leases.state(sid)[:2] == (leases[0].owner_id, 1)


def test_concurrent_claims_after_expiry_yield_exactly_one_lease(store: Store) -> None:
    """Racing takeovers of an expired lease: one winner, with fencing token exactly + 1."""
    sid = new_session(store)
    expire_soon(store, sid, "worker-old")
    owners = [f"worker-{i}" for i in range(4)]
    results = race(
        [lambda o=o: store.leases.try_claim(sid, o, "inc") for o in owners]  # type: ignore[misc]
    )
    leases = [r for r in results if isinstance(r, Lease)]
    assert len(leases) == 1, results
    assert leases[0].fencing_token == 2


def test_lease_on_an_unknown_session_or_bad_arguments_is_refused(store: Store) -> None:
    """Leasing a missing session raises SessionNotFound; empty owner or bad ttl ValidationError."""
    with pytest.raises(SessionNotFound):
        store.leases.try_claim("nope", "w", "i")
    sid = new_session(store)
    with pytest.raises(ValidationError):
        store.leases.try_claim(sid, "", "i")
    with pytest.raises(ValidationError):
        store.leases.try_claim(sid, "w", "i", ttl_ms=0)
    assert store.leases.state(sid) == (None, 0, None)


def test_lease_expiry_uses_the_database_clock(store: Store) -> None:
    """A short-ttl lease is Busy right away and free for others once its ttl has passed."""
    sid = new_session(store)
    take_lease(store, sid, "worker-a", ttl_ms=1_000)
    assert isinstance(store.leases.try_claim(sid, "worker-b", "inc"), Busy)
    short = take_lease(store, "s1", "worker-a", ttl_ms=SHORT_TTL_MS)  # re-entry shortens the ttl
    assert short.fencing_token == 1
    wait_past_expiry()
    assert take_lease(store, sid, "worker-b").fencing_token == 2
