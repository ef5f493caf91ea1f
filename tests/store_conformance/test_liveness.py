"""Store conformance: worker heartbeats and the reclaim of leases held by a dead incarnation.

Death is written in SQL (a heartbeat's expiry moved into the past), never waited for.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from lash_tasks.errors import EffectBusy, LeaseLost, ValidationError
from lash_tasks.store import schema as t
from lash_tasks.store.records import Busy, ExecuteEffect
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    append,
    enqueue,
    msg,
    new_session,
    take_lease,
)

GRACE_MS = 3_000
TTL_MS = 30_000


def register(store: Store, owner: str, incarnation: str, *dead: str) -> None:
    assert store.heartbeats.register(owner, incarnation, grace_ms=GRACE_MS, declare_dead=dead)


def stop_heartbeat(store: Store, incarnation: str) -> None:
    """The incarnation stopped beating long enough ago to be declared dead."""
    with store.database.engine.begin() as conn:
        now = store.database.dialect.now_ms(conn)
        conn.execute(
            update(t.worker_heartbeats)
            .where(t.worker_heartbeats.c.incarnation_id == incarnation)
            .values(heartbeat_at=now - GRACE_MS - 1, expires_at=now - 1)
        )


def heartbeat_rows(store: Store) -> set[str]:
    with store.database.engine.connect() as conn:
        return set(conn.execute(select(t.worker_heartbeats.c.incarnation_id)).scalars())


def test_lease_of_a_holder_whose_heartbeat_stopped_is_taken_over_at_once(store: Store) -> None:
    """A live-ttl lease whose holder's heartbeat expired goes to a claimant with fence + 1."""
    sid = new_session(store)
    register(store, "worker-a", "inc-a")
    held = take_lease(store, sid, "worker-a", "inc-a", ttl_ms=TTL_MS)
    stop_heartbeat(store, "inc-a")
    taken = take_lease(store, sid, "worker-b", "inc-b", ttl_ms=TTL_MS)
    assert taken.fencing_token == held.fencing_token + 1
    assert taken.lease_token != held.lease_token
    assert store.leases.state(sid)[:2] == ("worker-b", taken.fencing_token)


def test_dead_holders_fence_can_neither_commit_nor_renew_after_takeover(store: Store) -> None:
    """After a dead holder's lease is taken over, its old fence is refused (LeaseLost)."""
    sid = new_session(store)
    register(store, "worker-a", "inc-a")
    old = take_lease(store, sid, "worker-a", "inc-a", ttl_ms=TTL_MS)
    stop_heartbeat(store, "inc-a")
    take_lease(store, sid, "worker-b", "inc-b")
    with pytest.raises(LeaseLost):
        store.commits.commit(append(sid, 0, old.fence, [msg("n1", None)]))
    with pytest.raises(LeaseLost):
        store.leases.renew(old.fence)
    assert store.sessions.record(sid).head_revision == 0


def test_live_heartbeat_keeps_the_lease_busy_until_it_would_be_declared_dead(
    store: Store,
) -> None:
    """With the holder beating, others get Busy, retry_after_ms no later than its heartbeat
    deadline (well inside the lease ttl)."""
    sid = new_session(store)
    register(store, "worker-a", "inc-a")
    take_lease(store, sid, "worker-a", "inc-a", ttl_ms=TTL_MS)
    busy = store.leases.try_claim(sid, "worker-b", "inc-b", TTL_MS)
    assert isinstance(busy, Busy)
    assert busy.holder_owner_id == "worker-a"
    assert 0 < busy.retry_after_ms <= GRACE_MS
    assert store.leases.state(sid)[:2] == ("worker-a", 1)


def test_holder_without_a_heartbeat_row_keeps_the_plain_ttl_rule(store: Store) -> None:
    """A lease whose holder never registered a heartbeat stays busy until its ttl."""
    sid = new_session(store)
    take_lease(store, sid, "cli-process", "inc-cli", ttl_ms=TTL_MS)
    stop_heartbeat(store, "inc-cli")  # no row: nothing to expire
    busy = store.leases.try_claim(sid, "worker-b", "inc-b", TTL_MS)
    assert isinstance(busy, Busy)
    assert GRACE_MS < busy.retry_after_ms <= TTL_MS


def test_restarted_owner_declares_its_previous_incarnation_dead_and_takes_over(
    store: Store,
) -> None:
    """A new incarnation registering with the old one in declare_dead takes its lease at once."""
    sid = new_session(store)
    register(store, "worker-a", "inc-1")
    old = take_lease(store, sid, "worker-a", "inc-1", ttl_ms=TTL_MS)
    register(store, "worker-a", "inc-2", "inc-1")
    new = take_lease(store, sid, "worker-a", "inc-2", ttl_ms=TTL_MS)
    assert new.fencing_token == old.fencing_token + 1
    assert [i.incarnation_id for i in store.heartbeats.live_incarnations("worker-a")] == ["inc-2"]


def test_a_live_incarnation_of_the_same_owner_blocks_registration(store: Store) -> None:
    """Registering while another live incarnation of the owner is not declared dead returns
    False and writes nothing; its lease stays busy for the would-be newcomer."""
    sid = new_session(store)
    register(store, "worker-a", "inc-1")
    take_lease(store, sid, "worker-a", "inc-1", ttl_ms=TTL_MS)
    assert store.heartbeats.register("worker-a", "inc-2", grace_ms=GRACE_MS) is False
    assert heartbeat_rows(store) == {"inc-1"}
    assert isinstance(store.leases.try_claim(sid, "worker-a", "inc-2", TTL_MS), Busy)
    # Another owner's registration is independent.
    register(store, "worker-b", "inc-9")
    assert heartbeat_rows(store) == {"inc-1", "inc-9"}


def test_sweeper_treats_a_dead_holders_lease_as_not_live(store: Store) -> None:
    """runnable_sessions lists a session whose lease holder's heartbeat expired, not a live one."""
    alive, dead = new_session(store, "alive"), new_session(store, "dead")
    for sid in (alive, dead):
        enqueue(store, sid, "k1")
    register(store, "worker-a", "inc-a")
    register(store, "worker-b", "inc-b")
    take_lease(store, alive, "worker-a", "inc-a", ttl_ms=TTL_MS)
    take_lease(store, dead, "worker-b", "inc-b", ttl_ms=TTL_MS)
    assert store.maintenance.runnable_sessions() == []
    stop_heartbeat(store, "inc-b")
    assert [r.session_id for r in store.maintenance.runnable_sessions()] == [dead]


def test_reaping_reports_a_dead_incarnations_sessions_exactly_once(store: Store) -> None:
    """reap_dead returns the sessions whose leases a dead incarnation holds, once."""
    s1, s2, s3 = (new_session(store, f"s{i}") for i in (1, 2, 3))
    register(store, "worker-a", "inc-a")
    register(store, "worker-b", "inc-b")
    take_lease(store, s1, "worker-a", "inc-a")
    released = take_lease(store, s2, "worker-a", "inc-a")
    store.leases.release(released.fence)
    take_lease(store, s3, "worker-b", "inc-b")
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == []
    stop_heartbeat(store, "inc-a")
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == [s1]
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == []
    reaped = store.heartbeats.incarnation("inc-a")
    assert reaped is not None and reaped.reaped_at is not None


def test_reaping_reports_a_lease_that_expired_before_the_death_was_noticed(
    store: Store,
) -> None:
    """A dead incarnation's lease that has already expired is reported too (no one else
    would poke its session before the next sweep)."""
    sid = new_session(store)
    register(store, "worker-a", "inc-a")
    take_lease(store, sid, "worker-a", "inc-a")
    with store.database.engine.begin() as conn:
        now = store.database.dialect.now_ms(conn)
        conn.execute(
            update(t.session_leases)
            .where(t.session_leases.c.session_id == sid)
            .values(expires_at=now - 1)
        )
    stop_heartbeat(store, "inc-a")
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == [sid]
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == []


def test_rows_dead_for_longer_than_the_retention_are_deleted(store: Store) -> None:
    """Reaping deletes heartbeat rows dead for longer than retention_ms, keeps the rest."""
    register(store, "worker-a", "inc-a")
    register(store, "worker-b", "inc-b")
    stop_heartbeat(store, "inc-a")
    store.heartbeats.reap_dead(retention_ms=60_000)
    assert heartbeat_rows(store) == {"inc-a", "inc-b"}
    store.heartbeats.reap_dead(retention_ms=0)
    assert heartbeat_rows(store) == {"inc-b"}


def test_a_beat_revives_an_incarnation_declared_dead_by_silence(store: Store) -> None:
    """A paused process that beats again is alive: its lease that nobody took is busy again,
    and a later death is reaped again."""
    sid = new_session(store)
    register(store, "worker-a", "inc-a")
    take_lease(store, sid, "worker-a", "inc-a", ttl_ms=TTL_MS)
    stop_heartbeat(store, "inc-a")
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == [sid]
    assert store.heartbeats.beat("worker-a", "inc-a", grace_ms=GRACE_MS) is True
    assert isinstance(store.leases.try_claim(sid, "worker-b", "inc-b", TTL_MS), Busy)
    stop_heartbeat(store, "inc-a")
    assert store.heartbeats.reap_dead(retention_ms=TTL_MS) == [sid]


def test_a_beat_after_its_row_was_deleted_writes_it_again(store: Store) -> None:
    """beat() on a deleted row re-inserts it and returns False; the holder is live again."""
    register(store, "worker-a", "inc-a")
    stop_heartbeat(store, "inc-a")
    store.heartbeats.reap_dead(retention_ms=0)
    assert store.heartbeats.incarnation("inc-a") is None
    assert store.heartbeats.beat("worker-a", "inc-a", grace_ms=GRACE_MS) is False
    row = store.heartbeats.incarnation("inc-a")
    assert row is not None and row.owner_id == "worker-a" and row.reaped_at is None
    assert [i.incarnation_id for i in store.heartbeats.live_incarnations("worker-a")] == ["inc-a"]


def test_retired_incarnation_is_dead_at_once(store: Store) -> None:
    """retire_incarnation (clean shutdown) makes whatever it still holds claimable now."""
    sid = new_session(store)
    register(store, "worker-a", "inc-a")
    held = take_lease(store, sid, "worker-a", "inc-a", ttl_ms=TTL_MS)
    store.heartbeats.retire("inc-a")
    assert store.heartbeats.live_incarnations("worker-a") == []
    assert take_lease(store, sid, "worker-b", "inc-b").fencing_token == held.fencing_token + 1


def _prepare(store: Store, owner: str, incarnation: str | None) -> object:
    return store.journal.prepare(
        scope_id="turn:s1:t1",
        replay_key="s1:t1:0:llm_call:0",
        session_id="s1",
        turn_id="t1",
        envelope_hash="h" * 64,
        owner=owner,
        ttl_ms=TTL_MS,
        incarnation_id=incarnation,
    )


def test_effect_held_by_a_dead_incarnation_is_taken_over_at_once(store: Store) -> None:
    """An in-progress effect whose executor's heartbeat is live is EffectBusy (retry no later
    than its heartbeat deadline); once that heartbeat expired it is taken over."""
    new_session(store)
    register(store, "worker-a", "inc-a")
    first = _prepare(store, "worker-a", "inc-a")
    assert isinstance(first, ExecuteEffect) and not first.took_over
    with pytest.raises(EffectBusy) as busy:
        _prepare(store, "worker-b", "inc-b")
    assert 0 < busy.value.details["retry_after_ms"] <= GRACE_MS
    stop_heartbeat(store, "inc-a")
    second = _prepare(store, "worker-b", "inc-b")
    assert isinstance(second, ExecuteEffect) and second.took_over


def test_effect_of_an_executor_without_heartbeat_keeps_its_ttl(store: Store) -> None:
    """An in-progress effect whose executor has no heartbeat row stays busy until its ttl."""
    new_session(store)
    _prepare(store, "cli", None)
    with pytest.raises(EffectBusy) as busy:
        _prepare(store, "worker-b", "inc-b")
    assert GRACE_MS < busy.value.details["retry_after_ms"] <= TTL_MS


def test_bad_heartbeat_arguments_are_refused_and_write_nothing(store: Store) -> None:
    """Empty or over-long ids and a non-positive grace raise ValidationError; no row appears."""
    bad_calls = [
        lambda: store.heartbeats.register("", "inc", grace_ms=GRACE_MS),
        lambda: store.heartbeats.register("w", "", grace_ms=GRACE_MS),
        lambda: store.heartbeats.register("w" * 201, "inc", grace_ms=GRACE_MS),
        lambda: store.heartbeats.register("w", "inc", grace_ms=0),
        lambda: store.heartbeats.beat("w", "", grace_ms=GRACE_MS),
        lambda: store.heartbeats.beat("w", "inc", grace_ms=-5),
    ]
    for call in bad_calls:
        with pytest.raises(ValidationError):
            call()
    assert heartbeat_rows(store) == set()
