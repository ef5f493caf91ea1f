"""Store conformance: the process registry (lash's `process_registry` cases, digest §2.7).

Registration, grants, the wake matrix, keyed events, the completion authority, the change
feed, the process lease (fence, renew, reclaim, stale/expired/replayed completion), prune,
and what deleting a session does to its processes. Death is written in SQL, never waited for.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from lash_tasks.errors import (
    LeaseLost,
    ProcessEventConflict,
    ProcessFinished,
    ProcessNotFound,
    RegistrationConflict,
    SessionNotFound,
    ValidationError,
)
from lash_tasks.machine.processes import (
    Disposition,
    ProcessRegistration,
    ProcessStatus,
    parse_disposition,
    wake_source_key,
)
from lash_tasks.store import schema as t
from lash_tasks.store.process_records import ProcessBusy, ProcessLease
from lash_tasks.store.store import Store
from tests.store_conformance.support import new_session, race, wait_past_expiry

OWNER, INC = "worker-a", "inc-a"
SHORT_TTL_MS = 250
GRACE_MS = 3_000


def reg(
    process_id: str = "p1",
    session_id: str = "s1",
    disposition: Disposition = Disposition.RERUNNABLE,
    wake: str | None = "s1",
    **input_: object,
) -> ProcessRegistration:
    return ProcessRegistration(
        process_id, "tool", disposition, session_id, dict(input_), wake_session_id=wake
    )


def claim(
    store: Store, process_id: str = "p1", owner: str = OWNER, inc: str = INC, ttl: int = 30_000
) -> ProcessLease:
    lease = store.processes.try_claim(process_id, owner, inc, ttl_ms=ttl)
    assert isinstance(lease, ProcessLease), lease
    return lease


def wake_batches(store: Store, session_id: str) -> list[str]:
    return [b.source_key for b in store.queue.list_batches(session_id, include_done=True)]


def process_rows(store: Store) -> int:
    with store.database.engine.connect() as conn:
        return len(conn.execute(select(t.processes.c.process_id)).all())


def stop_heartbeat(store: Store, incarnation: str) -> None:
    with store.database.engine.begin() as conn:
        now = store.database.dialect.now_ms(conn)
        conn.execute(
            update(t.worker_heartbeats)
            .where(t.worker_heartbeats.c.incarnation_id == incarnation)
            .values(heartbeat_at=now - GRACE_MS - 1, expires_at=now - 1)
        )


# ── registration ─────────────────────────────────────────────────────────────────────────


def test_registration_is_idempotent_by_hash(store: Store) -> None:
    """The same id with the same registration returns the existing row, created once."""
    new_session(store)
    first, created = store.processes.register(reg(task="x"))
    again, created_again = store.processes.register(reg(task="x"))
    assert (created, created_again) == (True, False)
    assert again == first
    assert first.status is ProcessStatus.RUNNING and first.fencing_token == 0
    assert [e.event_type for e in store.processes.events_after("p1")] == ["registered"]


def test_registration_with_a_different_hash_conflicts_and_writes_nothing(store: Store) -> None:
    """The same id with another registration raises RegistrationConflict; the row stays."""
    new_session(store)
    first, _ = store.processes.register(reg(task="x"))
    with pytest.raises(RegistrationConflict):
        store.processes.register(reg(task="y"))
    with pytest.raises(RegistrationConflict):
        store.processes.register(reg(task="x", disposition=Disposition.OWNER_BOUND))
    assert store.processes.require("p1") == first
    assert len(store.processes.events_after("p1")) == 1


def test_disposition_has_no_default(store: Store) -> None:
    """A registration must declare a known disposition; nothing is registered otherwise."""
    new_session(store)
    for bad in (None, "", "sometimes"):
        with pytest.raises(ValidationError) as caught:
            parse_disposition(bad)
        assert caught.value.details["field"] == "disposition"
    with pytest.raises(ValidationError):
        ProcessRegistration("p1", "tool", "rerunnable", "s1")  # type: ignore[arg-type]
    assert process_rows(store) == 0


def test_registration_needs_its_sessions_and_a_valid_id(store: Store) -> None:
    """An unknown originating or wake session raises SessionNotFound; a bad id is refused."""
    new_session(store)
    with pytest.raises(SessionNotFound):
        store.processes.register(reg(session_id="nobody", wake=None))
    with pytest.raises(SessionNotFound):
        store.processes.register(reg(wake="nobody"))
    with pytest.raises(ValidationError):
        reg(process_id="../bad")
    assert process_rows(store) == 0


def test_origin_and_wake_target_hold_grants(store: Store) -> None:
    """Registration grants its session and its wake target a handle; both list it."""
    new_session(store, "s1")
    new_session(store, "s2")
    store.processes.register(reg(wake="s2"))
    assert store.processes.grants("p1") == ["s1", "s2"]
    assert [p.process_id for p in store.processes.for_session("s2")] == ["p1"]
    assert store.processes.for_session("s3") == []


def test_unknown_process_is_not_found(store: Store) -> None:
    """Claims, events and completions of an unknown process raise ProcessNotFound."""
    with pytest.raises(ProcessNotFound):
        store.processes.try_claim("ghost", OWNER, INC)
    with pytest.raises(ProcessNotFound):
        store.processes.append_event("ghost", "progress", {})
    with pytest.raises(ProcessNotFound):
        store.processes.complete(None, "ghost", "completed", {}, "k")
    assert store.processes.get("ghost") is None


# ── events ───────────────────────────────────────────────────────────────────────────────


def test_keyed_events_are_idempotent_and_conflict_on_changed_payload(store: Store) -> None:
    """Same key and payload return the first event; same key, other payload conflicts."""
    new_session(store)
    store.processes.register(reg())
    first = store.processes.append_event("p1", "progress", {"pct": 10}, "k1")
    assert store.processes.append_event("p1", "progress", {"pct": 10}, "k1") == first
    with pytest.raises(ProcessEventConflict):
        store.processes.append_event("p1", "progress", {"pct": 20}, "k1")
    unkeyed = store.processes.append_event("p1", "progress", {"pct": 20})
    assert (first.seq, unkeyed.seq) == (2, 3)
    assert [e.seq for e in store.processes.events_after("p1", 1)] == [2, 3]


def test_event_sequences_are_per_process(store: Store) -> None:
    """Each process numbers its events from 1, whatever other processes append."""
    new_session(store)
    store.processes.register(reg("p1"))
    store.processes.register(reg("p2"))
    store.processes.append_event("p1", "progress", {})
    assert store.processes.append_event("p2", "progress", {}).seq == 2
    assert store.processes.append_event("p1", "progress", {}).seq == 3


def test_terminal_events_need_a_key_and_come_only_from_completion(store: Store) -> None:
    """`terminal` is not an appendable type, completion needs a key, and a terminal process
    takes no more events."""
    new_session(store)
    store.processes.register(reg())
    with pytest.raises(ValidationError):
        store.processes.append_event("p1", "terminal", {})
    lease = claim(store)
    with pytest.raises(ValidationError):
        store.processes.complete(lease.fence, "p1", "completed", {}, "")
    with pytest.raises(ValidationError):
        store.processes.complete(lease.fence, "p1", "running", {}, "k")  # type: ignore[arg-type]
    store.processes.complete(lease.fence, "p1", "completed", {"answer": 1}, "done")
    with pytest.raises(ProcessFinished):
        store.processes.append_event("p1", "progress", {})


# ── the lease ────────────────────────────────────────────────────────────────────────────


def test_claim_reenter_and_busy(store: Store) -> None:
    """A claim bumps the fence; the same incarnation re-enters with the same token and
    fence; another owner meets Busy while the lease lives."""
    new_session(store)
    store.processes.register(reg())
    first = claim(store)
    assert (first.fencing_token, first.found) == (1, "free")
    again = claim(store)
    assert (again.lease_token, again.fencing_token, again.found) == (
        first.lease_token,
        1,
        "mine",
    )
    busy = store.processes.try_claim("p1", "worker-b", "inc-b")
    assert isinstance(busy, ProcessBusy) and busy.holder_owner_id == OWNER
    assert 0 < busy.retry_after_ms <= 30_000


def test_stale_renew_raises_and_stale_release_is_a_noop(store: Store) -> None:
    """After a takeover the old fence cannot renew (LeaseLost) and its release changes
    nothing; the fencing token survives release."""
    new_session(store)
    store.processes.register(reg())
    old = claim(store, ttl=SHORT_TTL_MS)
    wait_past_expiry()
    new = claim(store, owner="worker-b", inc="inc-b")
    assert (new.fencing_token, new.found) == (2, "expired")
    with pytest.raises(LeaseLost):
        store.processes.renew(old.fence)
    assert store.processes.release(old.fence) is False
    assert store.processes.require("p1").lease_owner == "worker-b"
    assert store.processes.renew(new.fence) > 0
    assert store.processes.release(new.fence) is True
    record = store.processes.require("p1")
    assert (record.lease_owner, record.fencing_token) == (None, 2)
    assert claim(store).fencing_token == 3


def test_lease_of_a_dead_holder_is_reclaimed_at_once(store: Store) -> None:
    """A live-ttl lease whose holder's heartbeat stopped goes to a claimant (dead_holder,
    fence + 1); a holder that still beats keeps it."""
    new_session(store)
    store.processes.register(reg())
    assert store.heartbeats.register(OWNER, INC, grace_ms=GRACE_MS)
    held = claim(store)
    assert isinstance(store.processes.try_claim("p1", "worker-b", "inc-b"), ProcessBusy)
    stop_heartbeat(store, INC)
    taken = claim(store, owner="worker-b", inc="inc-b")
    assert (taken.found, taken.fencing_token) == ("dead_holder", held.fencing_token + 1)


def test_first_started_is_recorded_once_under_the_lease(store: Store) -> None:
    """mark_started stamps first_started once (the first value stays) and needs the lease."""
    new_session(store)
    store.processes.register(reg(disposition=Disposition.OWNER_BOUND))
    lease = claim(store)
    started = store.processes.mark_started(lease.fence)
    assert store.processes.mark_started(lease.fence) == started
    record = store.processes.require("p1")
    assert record.first_started_at == started
    assert record.disposition is Disposition.OWNER_BOUND
    store.processes.release(lease.fence)
    with pytest.raises(LeaseLost):
        store.processes.mark_started(lease.fence)


# ── completion ───────────────────────────────────────────────────────────────────────────


def test_completion_appends_terminal_event_clears_lease_and_wakes(store: Store) -> None:
    """One transaction: terminal event, status, lease cleared (fence kept), and a
    process_wake batch on the wake target under `process:{id}:event:{seq}:wake`."""
    new_session(store)
    store.processes.register(reg(call_id="call-7"))
    lease = claim(store)
    done = store.processes.complete(
        lease.fence, "p1", "completed", {"answer": 42}, "done", summary="42"
    )
    assert not done.replayed and done.wake_session_id == "s1"
    assert done.event.event_type == "terminal" and done.event.seq == 2
    record = store.processes.require("p1")
    assert record.status is ProcessStatus.COMPLETED
    assert (record.lease_owner, record.fencing_token) == (None, 1)
    assert record.result == {"status": "completed", "result": {"answer": 42}, "summary": "42"}
    (batch,) = store.queue.list_batches("s1")
    assert batch.source_key == wake_source_key("p1", 2) == "process:p1:event:2:wake"
    assert batch.payloads[0] == {
        "type": "process_wake",
        "process_id": "p1",
        "status": "completed",
        "summary": "42",
        "call_id": "call-7",
    }


def test_replayed_completion_returns_the_first_and_wakes_once(store: Store) -> None:
    """Completing again with the same key and result (even without the lease) returns the
    stored completion; the wake target has one wake."""
    new_session(store)
    store.processes.register(reg())
    lease = claim(store)
    first = store.processes.complete(lease.fence, "p1", "completed", {"a": 1}, "done")
    again = store.processes.complete(lease.fence, "p1", "completed", {"a": 1}, "done")
    unleased = store.processes.complete(None, "p1", "completed", {"a": 1}, "done")
    assert again.replayed and unleased.replayed
    assert again.event == first.event == unleased.event
    assert wake_batches(store, "s1") == ["process:p1:event:2:wake"]
    with pytest.raises(ProcessEventConflict):
        store.processes.complete(lease.fence, "p1", "completed", {"a": 2}, "done")
    with pytest.raises(ProcessFinished):
        store.processes.complete(lease.fence, "p1", "failed", {}, "other-key")


def test_stale_and_expired_completions_are_refused(store: Store) -> None:
    """A completion under an expired lease, or a fence another worker took over, raises
    LeaseLost and changes nothing."""
    new_session(store)
    store.processes.register(reg())
    old = claim(store, ttl=SHORT_TTL_MS)
    wait_past_expiry()
    with pytest.raises(LeaseLost):
        store.processes.complete(old.fence, "p1", "completed", {}, "done")
    claim(store, owner="worker-b", inc="inc-b")
    with pytest.raises(LeaseLost):
        store.processes.complete(old.fence, "p1", "completed", {}, "done")
    record = store.processes.require("p1")
    assert record.status is ProcessStatus.RUNNING and record.lease_owner == "worker-b"
    assert [e.event_type for e in store.processes.events_after("p1")] == ["registered"]
    assert wake_batches(store, "s1") == []


def test_completion_authority_follows_the_disposition(store: Store) -> None:
    """Without a lease only an externally owned process can be completed (by its owner);
    a fleet-run process needs the live lease."""
    new_session(store)
    store.processes.register(reg("fleet", wake=None))
    store.processes.register(reg("ext", disposition=Disposition.EXTERNALLY_OWNED, wake=None))
    with pytest.raises(LeaseLost):
        store.processes.complete(None, "fleet", "completed", {}, "done")
    done = store.processes.complete(None, "ext", "completed", {"by": "owner"}, "done")
    assert done.record.status is ProcessStatus.COMPLETED and done.wake_batch_id is None
    assert store.processes.require("fleet").status is ProcessStatus.RUNNING


def test_completion_stamps_the_process_attachment_intents(store: Store) -> None:
    """Intents owned by the process are committed by its completion, not by anything else."""
    new_session(store)
    store.processes.register(reg())
    att, other = "a" * 64, "b" * 64
    store.manifest.record_intent("s1", att, "file:///a", owner_kind="process", owner_id="p1")
    store.manifest.record_intent("s1", other, "file:///b", owner_kind="process", owner_id="p9")
    store.processes.complete(claim(store).fence, "p1", "completed", {}, "done")
    with store.database.engine.connect() as conn:
        m = t.attachment_manifest
        stamped = dict(conn.execute(select(m.c.attachment_id, m.c.committed_at)).all())
    assert stamped[att] is not None and stamped[other] is None


def test_wake_for_a_deleted_target_is_a_noop(store: Store) -> None:
    """A wake target deleted before completion gets no wake; completion still succeeds."""
    new_session(store, "s1")
    new_session(store, "s2")
    store.processes.register(reg(wake="s2"))
    lease = claim(store)
    store.sessions.delete("s2")
    done = store.processes.complete(lease.fence, "p1", "completed", {}, "done")
    assert done.wake_batch_id is None and done.record.status is ProcessStatus.COMPLETED
    assert wake_batches(store, "s1") == []


# ── the change feed, the sweeper's list, prune ───────────────────────────────────────────


def test_change_feed_pages_in_write_order(store: Store) -> None:
    """processes_changed_since returns rows written after the cursor, oldest change first;
    every write moves the row to the end of the feed."""
    new_session(store)
    for pid in ("p1", "p2", "p3"):
        store.processes.register(reg(pid))
    page = store.processes.changed_since(0, limit=2)
    assert [r.process_id for r in page.records] == ["p1", "p2"]
    rest = store.processes.changed_since(page.cursor)
    assert [r.process_id for r in rest.records] == ["p3"]
    store.processes.append_event("p1", "progress", {})
    moved = store.processes.changed_since(rest.cursor)
    assert [r.process_id for r in moved.records] == ["p1"]
    assert store.processes.changed_since(moved.cursor).records == ()
    with pytest.raises(ValidationError):
        store.processes.changed_since(-1)


def test_concurrent_terminal_writers_both_reach_the_feed(store: Store) -> None:
    """Two processes completed at once both appear after the cursor taken before, with
    distinct positions."""
    new_session(store)
    store.processes.register(reg("p1"))
    store.processes.register(reg("p2"))
    leases = {pid: claim(store, pid) for pid in ("p1", "p2")}
    cursor = store.processes.changed_since(0).cursor
    results = race(
        [
            lambda pid=pid: store.processes.complete(  # type: ignore[misc]
                leases[pid].fence, pid, "completed", {}, "done"
            )
            for pid in ("p1", "p2")
        ]
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    changed = store.processes.changed_since(cursor).records
    assert sorted(r.process_id for r in changed) == ["p1", "p2"]
    assert len({r.change_seq for r in changed}) == 2
    assert sorted(wake_batches(store, "s1")) == [
        "process:p1:event:2:wake",
        "process:p2:event:2:wake",
    ]


def test_runnable_lists_running_fleet_processes_without_a_live_lease(store: Store) -> None:
    """The sweeper's list: running, not externally owned, lease free or expired."""
    new_session(store)
    store.processes.register(reg("free"))
    store.processes.register(reg("held"))
    store.processes.register(reg("lapsed"))
    store.processes.register(reg("ext", disposition=Disposition.EXTERNALLY_OWNED))
    store.processes.register(reg("done"))
    claim(store, "held")
    claim(store, "lapsed", ttl=SHORT_TTL_MS)
    store.processes.complete(claim(store, "done").fence, "done", "completed", {}, "k")
    wait_past_expiry()
    assert sorted(store.processes.runnable()) == ["free", "lapsed"]


def test_prune_deletes_only_old_terminal_processes(store: Store) -> None:
    """Prune removes terminal processes older than the cutoff with their events and grants;
    running ones are never pruned, and a second prune finds nothing."""
    new_session(store)
    store.processes.register(reg("old-done", wake=None))
    store.processes.register(reg("running"))
    store.processes.complete(claim(store, "old-done").fence, "old-done", "failed", {}, "k")
    cutoff = store.database.db_now_ms() + 1
    assert store.maintenance.prune_terminal_processes(cutoff + 60_000) == 1
    assert store.maintenance.prune_terminal_processes(cutoff + 60_000) == 0
    assert store.processes.get("old-done") is None
    assert store.processes.events_after("old-done") == []
    assert store.processes.grants("old-done") == []
    assert store.processes.require("running").status is ProcessStatus.RUNNING


def test_counts_cover_every_status(store: Store) -> None:
    """counts() reports each status, zero included."""
    new_session(store)
    store.processes.register(reg("p1"))
    store.processes.register(reg("p2"))
    store.processes.complete(claim(store, "p2").fence, "p2", "abandoned", {}, "k")
    counts = store.processes.counts()
    assert counts == {
        "running": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "abandoned": 1,
    }


# ── delete_session ───────────────────────────────────────────────────────────────────────


def test_delete_session_reports_orphans_and_never_cancels(store: Store) -> None:
    """Deleting a session revokes its grants and wakes, deletes its finished processes,
    leaves running ones running, and reports those left with no grant as orphaned."""
    new_session(store, "parent")
    new_session(store, "other")
    store.processes.register(reg("mine", session_id="parent", wake="parent"))
    store.processes.register(reg("shared", session_id="parent", wake="other"))
    store.processes.register(reg("finished", session_id="parent", wake="parent"))
    store.processes.register(reg("theirs", session_id="other", wake="other"))
    lease = claim(store, "finished")
    store.processes.complete(lease.fence, "finished", "completed", {}, "k")

    report = store.sessions.delete("parent")

    assert report.existed and report.orphaned_process_ids == ("mine",)
    assert report.revoked_grants == 3 and report.cleared_wakes == 1
    mine = store.processes.require("mine")
    assert mine.status is ProcessStatus.RUNNING
    assert (mine.session_id, mine.wake_session_id) == (None, None)
    assert store.processes.grants("shared") == ["other"]
    assert store.processes.get("finished") is None
    assert store.processes.require("theirs").session_id == "other"
    with store.database.engine.connect() as conn:
        p = t.processes
        left = conn.execute(select(p.c.process_id).where(p.c.session_id == "parent")).all()
    assert left == []


def test_delete_unknown_session_is_a_noop_report(store: Store) -> None:
    """delete_session of an unknown session returns an empty report and changes nothing."""
    new_session(store)
    store.processes.register(reg())
    report = store.sessions.delete("nobody")
    assert (report.existed, report.orphaned_process_ids, report.revoked_grants) == (False, (), 0)
    assert store.processes.grants("p1") == ["s1"]
