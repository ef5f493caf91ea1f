"""Store conformance: the rest of lash's `process_registry` cases (digest §2.7).

`test_processes.py` holds the registry's first cases; these are the lash cases it did not
cover yet, one test per case (coverage counts and what does not apply: docs/store.md).
Expiry is written in SQL unless the case is about time passing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update

from lash_tasks.errors import (
    LeaseLost,
    ProcessEventConflict,
    ProcessFinished,
    ProcessNotFound,
    ValidationError,
)
from lash_tasks.machine.processes import TERMINAL_STATUSES, Disposition, ProcessStatus
from lash_tasks.store import schema as t
from lash_tasks.store.process_records import Completion, ProcessBusy, ProcessFence, ProcessLease
from lash_tasks.store.store import Store
from tests.store_conformance.support import new_session, race, wait_past_expiry
from tests.store_conformance.test_processes import (
    GRACE_MS,
    INC,
    OWNER,
    SHORT_TTL_MS,
    claim,
    reg,
    stop_heartbeat,
    wake_batches,
)

EXT = Disposition.EXTERNALLY_OWNED
# Later than any row's timestamp, and still a BIGINT.
FAR_FUTURE_MS = 2**62


def expire_lease(store: Store, process_id: str = "p1") -> None:
    """The process lease's ttl has passed (written in SQL, not waited for)."""
    with store.database.engine.begin() as conn:
        now = store.database.dialect.now_ms(conn)
        conn.execute(
            update(t.processes)
            .where(t.processes.c.process_id == process_id)
            .values(lease_expires_at=now - 1)
        )


def set_updated_at(store: Store, process_id: str, at_ms: int) -> None:
    with store.database.engine.begin() as conn:
        conn.execute(
            update(t.processes)
            .where(t.processes.c.process_id == process_id)
            .values(updated_at=at_ms)
        )


def event_types(store: Store, process_id: str = "p1") -> list[str]:
    return [e.event_type for e in store.processes.events_after(process_id)]


# ── registration, reads, grants ──────────────────────────────────────────────────────────


def test_registry_declares_its_durability_tier(store: Store) -> None:
    """The registry shares the store's database, whose declared tier is durable on both
    dialects."""
    assert store.durability_tier == "durable"


def test_a_session_without_grants_lists_no_processes(store: Store) -> None:
    """A session holding no grant lists no process; a process whose only grant holder is
    deleted lives on with zero grants."""
    new_session(store, "s1")
    new_session(store, "s2")
    store.processes.register(reg(wake=None))
    assert store.processes.for_session("s2") == []
    store.sessions.delete("s1")
    assert store.processes.grants("p1") == []
    assert store.processes.require("p1").status is ProcessStatus.RUNNING


def test_disposition_first_started_and_lease_holder_persist(store: Store) -> None:
    """Disposition, first_started and the lease holder read back; first_started keeps the
    first writer's value even under a later owner; an unknown process is not found."""
    new_session(store)
    store.processes.register(reg(disposition=Disposition.OWNER_BOUND, wake=None))
    fresh = store.processes.require("p1")
    assert (fresh.disposition, fresh.first_started_at, fresh.lease_owner) == (
        Disposition.OWNER_BOUND,
        None,
        None,
    )
    first = claim(store)
    held = store.processes.require("p1")
    assert (held.lease_owner, held.lease_incarnation_id) == (OWNER, INC)
    assert (held.lease_expires_at, held.fencing_token) == (first.expires_at, 1)
    started = store.processes.mark_started(first.fence)

    expire_lease(store)
    later = claim(store, owner="worker-b", inc="inc-b")
    assert store.processes.mark_started(later.fence) == started
    assert store.processes.require("p1").first_started_at == started
    assert event_types(store).count("first_started") == 1
    with pytest.raises(ProcessNotFound):
        store.processes.mark_started(ProcessFence("ghost", OWNER, "token", 1))


# ── events and wakes ─────────────────────────────────────────────────────────────────────


def test_events_after_keeps_order_and_never_returns_the_cursor_event(store: Store) -> None:
    """events_after(seq) returns the process's later events in order, never the event at the
    cursor, nothing past the last one, and nothing of another process."""
    new_session(store)
    store.processes.register(reg("p1"))
    store.processes.register(reg("p2"))
    for kind in ("a", "b", "c"):
        store.processes.append_event("p1", kind, {})
    store.processes.append_event("p2", "other", {})
    after = store.processes.events_after("p1", 2)
    assert [(e.seq, e.event_type) for e in after] == [(3, "b"), (4, "c")]
    assert store.processes.events_after("p1", 4) == []
    assert store.processes.events_after("p1", 99) == []
    assert "other" not in event_types(store, "p1")


def test_completion_wake_matrix(store: Store) -> None:
    """Each terminal status wakes the wake target with that status under the event's source
    key; attachments reach only the process's own session; no target, no wake."""
    new_session(store, "s1")
    new_session(store, "s2")
    named = {"attachments": ["att-1"]}
    for status in TERMINAL_STATUSES:
        pid = f"p-{status.value}"
        store.processes.register(reg(pid))
        lease = claim(store, pid)
        store.processes.complete(lease.fence, pid, status.value, named, "done", summary="s")
    store.processes.register(reg("p-away", wake="s2"))
    store.processes.complete(claim(store, "p-away").fence, "p-away", "completed", named, "done")
    store.processes.register(reg("p-none", wake=None))
    lonely = store.processes.complete(
        claim(store, "p-none").fence, "p-none", "completed", named, "done"
    )

    home = {b.payloads[0]["process_id"]: b for b in store.queue.list_batches("s1")}
    assert sorted(home) == sorted(f"p-{s.value}" for s in TERMINAL_STATUSES)
    for status in TERMINAL_STATUSES:
        batch = home[f"p-{status.value}"]
        assert batch.source_key == f"process:p-{status.value}:event:2:wake"
        assert batch.payloads[0]["status"] == status.value
        assert batch.payloads[0]["attachments"] == ["att-1"]
    (away,) = store.queue.list_batches("s2")
    assert away.payloads[0]["process_id"] == "p-away" and "attachments" not in away.payloads[0]
    assert (lonely.wake_batch_id, lonely.wake_session_id) == (None, None)


def test_a_process_without_a_wake_target_records_without_delivery(store: Store) -> None:
    """Without a wake target the events and the terminal event are recorded and no session
    gets queued work."""
    new_session(store)
    store.processes.register(reg(wake=None))
    store.processes.append_event("p1", "progress", {"pct": 50}, "half")
    done = store.processes.complete(claim(store).fence, "p1", "completed", {}, "done")
    assert (done.wake_batch_id, done.wake_session_id) == (None, None)
    assert event_types(store) == ["registered", "progress", "terminal"]
    assert wake_batches(store, "s1") == []


def test_cancelled_terminal_needs_a_key_and_the_owner_authority(store: Store) -> None:
    """A cancel is the `cancelled` terminal: it needs an idempotency key, and without the
    lease only an externally owned process's owner may write it; a replay writes nothing."""
    new_session(store)
    store.processes.register(reg("fleet", wake=None))
    store.processes.register(reg("ext", disposition=EXT, wake=None))
    with pytest.raises(ValidationError) as caught:
        store.processes.complete(None, "ext", "cancelled", {"reason": "stop"}, "")
    assert caught.value.details["field"] == "idempotency_key"
    with pytest.raises(LeaseLost):
        store.processes.complete(None, "fleet", "cancelled", {"reason": "stop"}, "cancel")
    first = store.processes.complete(None, "ext", "cancelled", {"reason": "stop"}, "cancel")
    again = store.processes.complete(None, "ext", "cancelled", {"reason": "stop"}, "cancel")
    assert first.record.status is ProcessStatus.CANCELLED and again.replayed
    assert event_types(store, "ext") == ["registered", "terminal"]
    lease = claim(store, "fleet")
    store.processes.complete(lease.fence, "fleet", "cancelled", {"reason": "stop"}, "cancel")
    assert store.processes.require("fleet").status is ProcessStatus.CANCELLED


# ── completion authority and terminal writers ────────────────────────────────────────────


def test_completion_authority_matrix(store: Store) -> None:
    """Unleased completion closes only externally owned processes; a fleet fence closes only
    fleet-run ones; a refused completion writes nothing."""
    new_session(store)
    for disposition in Disposition:
        for variant in ("unleased", "fenced"):
            pid = f"{disposition.value}-{variant}"
            store.processes.register(reg(pid, disposition=disposition, wake=None))

    store.processes.complete(None, "externally_owned-unleased", "completed", {}, "done")
    ext_lease = claim(store, "externally_owned-fenced")
    with pytest.raises(ValidationError) as caught:
        store.processes.complete(
            ext_lease.fence, "externally_owned-fenced", "completed", {}, "done"
        )
    assert caught.value.details["field"] == "fence"
    for fleet in (Disposition.RERUNNABLE, Disposition.OWNER_BOUND):
        with pytest.raises(LeaseLost):
            store.processes.complete(None, f"{fleet.value}-unleased", "completed", {}, "done")
        pid = f"{fleet.value}-fenced"
        store.processes.complete(claim(store, pid).fence, pid, "completed", {}, "done")

    statuses = {
        pid: store.processes.require(pid).status
        for pid in (f"{d.value}-{v}" for d in Disposition for v in ("unleased", "fenced"))
    }
    assert statuses == {
        "rerunnable-unleased": ProcessStatus.RUNNING,
        "rerunnable-fenced": ProcessStatus.COMPLETED,
        "owner_bound-unleased": ProcessStatus.RUNNING,
        "owner_bound-fenced": ProcessStatus.COMPLETED,
        "externally_owned-unleased": ProcessStatus.COMPLETED,
        "externally_owned-fenced": ProcessStatus.RUNNING,
    }
    for refused in ("rerunnable-unleased", "owner_bound-unleased", "externally_owned-fenced"):
        assert event_types(store, refused) == ["registered"]


def test_completion_authority_reads_the_live_disposition(store: Store) -> None:
    """Once prune freed an id and it is registered again as owner_bound, a retry of the old
    owner's unleased completion is refused and appends nothing."""
    new_session(store)
    store.processes.register(reg(disposition=EXT, wake=None))
    store.processes.complete(None, "p1", "completed", {"n": 1}, "done")
    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS) == 1
    _, created = store.processes.register(reg(disposition=Disposition.OWNER_BOUND, wake=None))
    assert created
    with pytest.raises(LeaseLost):
        store.processes.complete(None, "p1", "completed", {"n": 1}, "done")
    assert store.processes.require("p1").status is ProcessStatus.RUNNING
    assert event_types(store) == ["registered"]
    store.processes.complete(claim(store).fence, "p1", "completed", {"n": 2}, "done")
    assert store.processes.require("p1").status is ProcessStatus.COMPLETED


def test_abandoned_terminal_round_trips_and_refuses_a_revenant(store: Store) -> None:
    """An abandoned terminal keeps its evidence and counts as abandoned; the dead holder's
    later writes are refused; it is prunable like any terminal."""
    new_session(store)
    store.processes.register(reg(disposition=Disposition.OWNER_BOUND, wake=None))
    assert store.heartbeats.register(OWNER, INC, grace_ms=GRACE_MS)
    dead = claim(store)
    started = store.processes.mark_started(dead.fence)
    stop_heartbeat(store, INC)
    finder = claim(store, owner="worker-b", inc="inc-b")
    assert finder.found == "dead_holder" and finder.previous_owner == OWNER
    evidence = {"dead_owner_id": OWNER, "first_started_at": started}

    store.processes.complete(
        finder.fence, "p1", "abandoned", {"evidence": evidence}, "terminal", summary="gone"
    )

    record = store.processes.require("p1")
    assert record.status is ProcessStatus.ABANDONED
    assert record.result == {
        "status": "abandoned",
        "result": {"evidence": evidence},
        "summary": "gone",
    }
    assert store.processes.counts()["abandoned"] == 1
    with pytest.raises(ProcessFinished):
        store.processes.complete(dead.fence, "p1", "completed", {"late": True}, "revenant")
    with pytest.raises(ProcessEventConflict):
        store.processes.complete(dead.fence, "p1", "completed", {"late": True}, "terminal")
    with pytest.raises(ProcessFinished):
        store.processes.append_event("p1", "progress", {})
    assert event_types(store).count("terminal") == 1
    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS) == 1
    assert store.processes.get("p1") is None


def test_concurrent_completions_of_one_process_have_one_winner(store: Store) -> None:
    """Racing terminal writers on one process append one terminal event: under other keys
    the losers are refused, under the same key they replay the winner and wake nobody."""
    new_session(store)
    store.processes.register(reg("p1", disposition=EXT, wake=None))
    store.processes.register(reg("p2", disposition=EXT))

    distinct = race(
        [
            lambda i=i: store.processes.complete(  # type: ignore[misc]
                None, "p1", "completed", {"by": i}, f"writer-{i}"
            )
            for i in range(4)
        ]
    )
    same = race(
        [
            lambda: store.processes.complete(None, "p2", "completed", {"by": "x"}, "done")
            for _ in range(4)
        ]
    )

    winners = [r for r in distinct if isinstance(r, Completion)]
    assert len(winners) == 1 and not winners[0].replayed
    assert all(isinstance(r, ProcessFinished) for r in distinct if r not in winners), distinct
    assert all(isinstance(r, Completion) for r in same), same
    assert sorted(r.replayed for r in same if isinstance(r, Completion)) == [
        False,
        True,
        True,
        True,
    ]
    assert event_types(store, "p1").count("terminal") == 1
    assert event_types(store, "p2").count("terminal") == 1
    assert wake_batches(store, "s1") == ["process:p2:event:2:wake"]


def test_replayed_completion_returns_the_stored_record(store: Store) -> None:
    """The lease is cleared with the terminal append; replaying the leased completion
    returns the very record and event, and the log holds one terminal event."""
    new_session(store)
    store.processes.register(reg(wake=None))
    lease = claim(store)
    first = store.processes.complete(lease.fence, "p1", "completed", {"a": 1}, "done")
    assert store.processes.require("p1").lease_owner is None
    again = store.processes.complete(lease.fence, "p1", "completed", {"a": 1}, "done")
    assert again.replayed and (again.record, again.event) == (first.record, first.event)
    assert event_types(store).count("terminal") == 1


# ── the change feed ──────────────────────────────────────────────────────────────────────


def test_change_feed_resumes_idempotently_and_shows_terminal_transitions(store: Store) -> None:
    """An empty page keeps the cursor; re-reading a cursor returns the same page; an event
    and a terminal transition each move their process to the end of the feed."""
    empty = store.processes.changed_since(0)
    assert (empty.records, empty.cursor) == ((), 0)
    new_session(store)
    store.processes.register(reg("a", wake=None))
    store.processes.register(reg("b", disposition=EXT, wake=None))

    first = store.processes.changed_since(0, limit=1)
    reread = store.processes.changed_since(0, limit=1)
    assert [r.process_id for r in first.records] == ["a"] and reread == first
    second = store.processes.changed_since(first.cursor, limit=1)
    assert [r.process_id for r in second.records] == ["b"]
    idle = store.processes.changed_since(second.cursor)
    assert (idle.records, idle.cursor) == ((), second.cursor)

    store.processes.append_event("a", "tick", {})
    store.processes.complete(None, "b", "completed", {}, "done")
    touched = store.processes.changed_since(second.cursor, limit=1)
    assert [r.process_id for r in touched.records] == ["a"]
    ended = store.processes.changed_since(touched.cursor, limit=1)
    assert [(r.process_id, r.status) for r in ended.records] == [("b", ProcessStatus.COMPLETED)]
    assert store.processes.changed_since(ended.cursor) == type(idle)((), ended.cursor)
    with pytest.raises(ValidationError):
        store.processes.changed_since(0, limit=0)


def test_change_feed_never_misses_concurrent_terminal_writers(store: Store) -> None:
    """A reader paging the feed while writers register, touch and complete processes sees
    every terminal transition exactly once, and every non-empty page moves the cursor."""
    new_session(store)
    ids = [f"w{i:02d}" for i in range(8)]
    writers_done = threading.Event()

    def write(pid: str) -> None:
        store.processes.register(reg(pid, disposition=EXT, wake=None))
        store.processes.append_event(pid, "tick", {})
        store.processes.complete(None, pid, "completed", {}, "done")

    def read() -> Counter[str]:
        cursor, seen = 0, Counter[str]()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Read "done" before the page: an empty page after it means nothing is left.
            finished = writers_done.is_set()
            page = store.processes.changed_since(cursor, limit=2)
            if not page.records:
                if finished:
                    return seen
                time.sleep(0.002)
                continue
            assert page.cursor > cursor
            cursor = page.cursor
            seen.update(r.process_id for r in page.records if r.status.terminal)
        raise AssertionError("the reader did not finish")

    with ThreadPoolExecutor(max_workers=1) as pool:
        reader = pool.submit(read)
        results = race([lambda pid=pid: write(pid) for pid in ids])  # type: ignore[misc]
        writers_done.set()
        seen = reader.result(timeout=60)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert seen == Counter({pid: 1 for pid in ids})


# ── the process lease ────────────────────────────────────────────────────────────────────


def test_reentry_extends_the_lease_and_keeps_the_fence(store: Store) -> None:
    """The holding incarnation re-claims its live lease with the same token and fence and a
    later expiry; another owner is told who holds it."""
    new_session(store)
    store.processes.register(reg())
    first = claim(store, ttl=10_000)
    again = claim(store, ttl=120_000)
    assert (again.lease_token, again.fencing_token) == (first.lease_token, first.fencing_token)
    assert again.expires_at >= first.expires_at + 100_000
    assert store.processes.require("p1").lease_expires_at == again.expires_at
    busy = store.processes.try_claim("p1", "worker-b", "inc-b")
    assert isinstance(busy, ProcessBusy) and busy.holder_owner_id == OWNER


def test_renewed_lease_outlives_its_first_expiry(store: Store) -> None:
    """A lease renewed before it lapses is still held after its first expiry passed: it
    renews again, others are busy, and the sweeper does not list it."""
    new_session(store)
    store.processes.register(reg())
    lease = claim(store, ttl=SHORT_TTL_MS)
    store.processes.renew(lease.fence, 60_000)
    wait_past_expiry()
    assert store.processes.renew(lease.fence, 60_000) > lease.expires_at
    assert isinstance(store.processes.try_claim("p1", "worker-b", "inc-b"), ProcessBusy)
    assert store.processes.runnable() == []


def test_completion_releases_the_lease_and_a_reclaim_bumps_the_fence(store: Store) -> None:
    """Completion clears the lease; the next claim finds it free and gets a higher fence."""
    new_session(store)
    store.processes.register(reg(wake=None))
    first = claim(store)
    store.processes.complete(first.fence, "p1", "completed", {}, "done")
    later = claim(store, owner="worker-b", inc="inc-b")
    assert (later.found, later.fencing_token) == ("free", first.fencing_token + 1)


def test_stale_completion_leaves_the_current_lease_untouched(store: Store) -> None:
    """A superseded holder's complete, renew, mark_started and release change nothing of the
    current holder's row; the current holder renews on."""
    new_session(store)
    store.processes.register(reg())
    old = claim(store)
    expire_lease(store)
    current = claim(store, owner="worker-b", inc="inc-b")
    assert current.found == "expired"
    before = store.processes.require("p1")
    with pytest.raises(LeaseLost):
        store.processes.complete(old.fence, "p1", "completed", {"writer": "stale"}, "done")
    with pytest.raises(LeaseLost):
        store.processes.renew(old.fence)
    with pytest.raises(LeaseLost):
        store.processes.mark_started(old.fence)
    assert store.processes.release(old.fence) is False
    assert store.processes.require("p1") == before
    assert event_types(store) == ["registered"]
    store.processes.renew(current.fence)


def test_dead_holder_reclaim_race_has_one_winner(store: Store) -> None:
    """Two workers racing for a provably dead holder's lease: one takes it (fence + 1), the
    other meets the winner, and the dead holder cannot take it back."""
    new_session(store)
    store.processes.register(reg())
    assert store.heartbeats.register(OWNER, INC, grace_ms=GRACE_MS)
    held = claim(store)
    stop_heartbeat(store, INC)

    results = race(
        [
            lambda owner=owner: store.processes.try_claim(  # type: ignore[misc]
                "p1", owner, f"inc-{owner}"
            )
            for owner in ("worker-b", "worker-c")
        ]
    )

    (winner,) = [r for r in results if isinstance(r, ProcessLease)]
    (loser,) = [r for r in results if isinstance(r, ProcessBusy)]
    assert (winner.found, winner.fencing_token) == ("dead_holder", held.fencing_token + 1)
    assert loser.holder_owner_id == winner.owner_id
    assert isinstance(store.processes.try_claim("p1", OWNER, INC), ProcessBusy)


def test_holder_without_liveness_proof_is_not_taken_early(store: Store) -> None:
    """A holder with no heartbeat record is never provably dead: its live lease stays busy
    and is taken only once its ttl passed."""
    new_session(store)
    store.processes.register(reg())
    held = claim(store)
    assert isinstance(store.processes.try_claim("p1", "worker-b", "inc-b"), ProcessBusy)
    expire_lease(store)
    taken = claim(store, owner="worker-b", inc="inc-b")
    assert (taken.found, taken.fencing_token) == ("expired", held.fencing_token + 1)


# ── prune ────────────────────────────────────────────────────────────────────────────────


def test_prune_cutoff_is_exclusive_between_two_terminals(store: Store) -> None:
    """Prune deletes a terminal last written before the cutoff, keeps one written at it with
    its events, and keeps an older running process."""
    new_session(store)
    for pid in ("old", "fresh", "live"):
        store.processes.register(reg(pid, disposition=EXT, wake=None))
    for pid in ("old", "fresh"):
        store.processes.complete(None, pid, "completed", {}, "done")
    cutoff = store.database.db_now_ms()
    set_updated_at(store, "old", cutoff - 1_000)
    set_updated_at(store, "fresh", cutoff)
    set_updated_at(store, "live", cutoff - 5_000)

    assert store.maintenance.prune_terminal_processes(cutoff) == 1

    assert store.processes.get("old") is None
    assert event_types(store, "fresh") == ["registered", "terminal"]
    assert store.processes.require("live").status is ProcessStatus.RUNNING


def test_prune_takes_events_grants_and_lease_and_frees_the_id(store: Store) -> None:
    """A pruned process leaves no event, grant or lease behind: its id registers anew and
    its fencing token starts over."""
    new_session(store)
    store.processes.register(reg(wake=None))
    lease = claim(store)
    store.processes.append_event("p1", "progress", {}, "k1")
    store.processes.complete(lease.fence, "p1", "completed", {}, "done")
    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS) == 1

    assert store.processes.get("p1") is None
    assert store.processes.events_after("p1") == []
    assert store.processes.grants("p1") == []
    assert store.processes.for_session("s1") == []
    record, created = store.processes.register(reg(wake=None))
    assert created and (record.fencing_token, record.lease_owner) == (0, None)
    fresh = claim(store)
    assert (fresh.found, fresh.fencing_token) == ("free", 1)
    assert store.processes.append_event("p1", "progress", {}, "k1").seq == 2


def test_prune_respects_the_change_feed_watermark(store: Store) -> None:
    """Given a feed cursor, prune deletes only terminals the reader has passed; a terminal
    change after the cursor is kept for it."""
    new_session(store)
    for pid in ("before", "after"):
        store.processes.register(reg(pid, disposition=EXT, wake=None))
    store.processes.complete(None, "before", "completed", {}, "done")
    cursor = store.processes.changed_since(0).cursor
    store.processes.complete(None, "after", "completed", {}, "done")

    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS, watermark=cursor) == 1

    assert store.processes.get("before") is None
    assert store.processes.require("after").status is ProcessStatus.COMPLETED
    with pytest.raises(ValidationError) as caught:
        store.maintenance.prune_terminal_processes(FAR_FUTURE_MS, watermark=-1)
    assert caught.value.details["field"] == "watermark"


# ── durability ───────────────────────────────────────────────────────────────────────────


def test_registry_survives_reopen(store: Store) -> None:
    """Processes, events, grants, the lease and keyed replay survive closing the engine and
    opening the store again."""
    new_session(store)
    registered, _ = store.processes.register(reg())
    event = store.processes.append_event("p1", "progress", {"pct": 10}, "k1")
    lease = claim(store)
    url = store.database.engine.url.render_as_string(hide_password=False)
    store.database.engine.dispose()

    reopened = Store.from_url(url)
    try:
        record = reopened.processes.require("p1")
        assert record.registration_hash == registered.registration_hash
        assert (record.lease_owner, record.fencing_token) == (OWNER, lease.fencing_token)
        assert reopened.processes.events_after("p1", 1) == [event]
        assert reopened.processes.grants("p1") == ["s1"]
        assert reopened.processes.append_event("p1", "progress", {"pct": 10}, "k1") == event
        assert reopened.processes.register(reg()) == (record, False)
        reopened.processes.renew(lease.fence)
        assert isinstance(reopened.processes.try_claim("p1", "worker-b", "inc-b"), ProcessBusy)
    finally:
        reopened.close()


def test_prune_keeps_a_process_whose_wake_is_still_queued(store: Store) -> None:
    """A terminal process whose wake batch is still in its target's queue is not pruned; once
    the wake is done and vacuumed it is, and its id registers and wakes anew."""
    new_session(store)
    store.processes.register(reg())
    store.processes.complete(claim(store).fence, "p1", "completed", {}, "done", summary="one")
    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS) == 0
    (wake,) = store.queue.list_batches("s1")

    store.queue.cancel("s1", wake.batch_id)
    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS) == 0
    store.maintenance.vacuum()
    assert store.maintenance.prune_terminal_processes(FAR_FUTURE_MS) == 1

    store.processes.register(reg())
    again = store.processes.complete(claim(store).fence, "p1", "failed", {}, "done", summary="2")
    assert again.wake_batch_id is not None
    assert wake_batches(store, "s1") == ["process:p1:event:2:wake"]
