"""Store conformance: tombstones, vacuum, session deletion and the sweeper's query."""

from __future__ import annotations

from sqlalchemy import insert

from lash_tasks.machine import ClearActiveTurn, OutboxReply, TurnStamp
from lash_tasks.machine.processes import Disposition, ProcessRegistration
from lash_tasks.store import schema as t
from lash_tasks.store.process_records import ProcessLease
from lash_tasks.store.records import ActivePath, FullGraph, VacuumReport
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    SHORT_TTL_MS,
    append,
    commit_chain,
    completion,
    enqueue,
    msg,
    new_session,
    session_row_counts,
    start_turn,
    take_lease,
    turn_work,
    unchanged,
    wait_past_expiry,
)


def _branched(store: Store, sid: str) -> None:
    """root -> a1 -> a2 (orphaned branch), root -> b1 (active path)."""
    lease = take_lease(store, sid)
    commit_chain(store, lease, "root", "a1", "a2")
    store.commits.commit(append(sid, 1, lease.fence, [msg("b1", "root")]))
    store.leases.release(lease.fence)


def test_orphaned_node_ids_are_the_nodes_off_the_active_path(store: Store) -> None:
    """orphaned_node_ids lists live nodes that are not on the active path."""
    sid = new_session(store)
    _branched(store, sid)
    assert store.sessions.orphaned_node_ids(sid) == ["a1", "a2"]


def test_tombstoned_nodes_vanish_from_every_read(store: Store) -> None:
    """Tombstoned nodes are hidden from full and active-path loads and from load_node."""
    sid = new_session(store)
    _branched(store, sid)
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 2
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 0
    assert set(store.sessions.load(sid, FullGraph()).graph.nodes) == {"root", "b1"}
    assert not {"a1", "a2"} & set(store.sessions.load(sid, ActivePath(leaf="a2")).graph.nodes)
    assert store.sessions.load_node(sid, "a1") is None
    assert store.sessions.load_node(sid, "root") is not None
    assert store.sessions.orphaned_node_ids(sid) == []


def test_nodes_on_the_active_path_are_never_tombstoned(store: Store) -> None:
    """tombstone_nodes skips every node on the current active path."""
    sid = new_session(store)
    _branched(store, sid)
    assert store.maintenance.tombstone_nodes(sid, ["root", "b1"]) == 0
    assert store.maintenance.tombstone_nodes(sid, ["root", "a2", "b1", "missing"]) == 1
    assert set(store.sessions.load(sid).graph.nodes) == {"root", "a1", "b1"}
    assert [n.node_id for n in store.sessions.load(sid, ActivePath()).graph.active_path()] == [
        "root",
        "b1",
    ]


def test_tombstones_do_not_reach_other_sessions(store: Store) -> None:
    """Tombstoning node ids in one session leaves same-named nodes of another session alone."""
    for sid in ("a", "b"):
        new_session(store, sid)
        _branched(store, sid)
    store.maintenance.tombstone_nodes("a", ["a1", "a2"])
    assert store.sessions.load_node("b", "a1") is not None


def _populate(store: Store, sid: str) -> None:
    """One of everything: nodes, a terminal and a waiting input, queued work (done and ready),
    an active turn, a turn stamp, a session event, a reply, a journal row, a manifest row and
    a process with an event."""
    lease = take_lease(store, sid)
    done_input = enqueue(store, sid, "done")
    claim = store.inputs.claim_next_turn(lease.fence)
    assert claim is not None and claim.inputs[0].input_id == done_input.input_id
    store.queue.enqueue(sid, turn_work("done-work"))
    qclaim = store.queue.claim_turn_work(lease.fence)
    assert qclaim is not None
    store.commits.commit(
        append(
            sid,
            0,
            lease.fence,
            [msg("root", None), msg("a1", "root")],
            input_completions=(completion(claim),),
            queue_completions=(completion(qclaim),),
            turn_stamp=TurnStamp("turn-1", "a" * 64, {"ok": True}),
            events=({"schema_version": 1, "type": "step_committed", "session_id": sid},),
            replies=(OutboxReply(sid, f"{sid}:turn-1:in", "app.answers", "app", {}),),
        )
    )
    store.commits.commit(
        unchanged(sid, 1, lease.fence, "a1", active_turn=start_turn("turn-2"), outbox=())
    )
    enqueue(store, sid, "waiting")
    store.queue.enqueue(sid, turn_work("ready-work"))
    now = store.database.db_now_ms()
    with store.database.engine.begin() as conn:
        conn.execute(
            insert(t.effect_journal).values(
                scope_id=sid,
                replay_key=f"{sid}:turn-1:0:llm:0",
                session_id=sid,
                turn_id="turn-1",
                envelope_hash="e" * 64,
                status="completed",
                outcome={},
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(t.attachment_manifest).values(
                session_id=sid, attachment_id="att-1", uri="file:///x", intent_at=0
            )
        )
    # A finished process of the session: deleted with it (a running one would live on).
    registration = ProcessRegistration(f"proc-{sid}", "tool", Disposition.RERUNNABLE, sid)
    store.processes.register(registration)
    held = store.processes.try_claim(f"proc-{sid}", "worker-a", "inc-1")
    assert isinstance(held, ProcessLease)
    store.processes.complete(held.fence, f"proc-{sid}", "completed", {}, "done")


def test_delete_session_leaves_other_sessions_intact(store: Store) -> None:
    """delete_session removes every row of that session and not one row of any other."""
    new_session(store, "victim")
    new_session(store, "bystander")
    _populate(store, "victim")
    _populate(store, "bystander")
    before = session_row_counts(store, "bystander")
    assert all(count > 0 for count in before.values()), before

    assert store.sessions.delete("victim").existed is True
    assert session_row_counts(store, "bystander") == before
    assert set(session_row_counts(store, "victim").values()) == {0}
    assert store.sessions.exists("victim") is False
    assert store.sessions.delete("victim").existed is False
    assert store.sessions.load("bystander").graph.nodes.keys() == {"root", "a1"}


def test_vacuum_reports_only_rows_it_removed(store: Store) -> None:
    """vacuum deletes tombstoned nodes, terminal inputs, finished queued work and journal rows
    of committed turns, reports exactly those counts, and a second vacuum reports zeros."""
    sid = new_session(store)
    _populate(store, sid)
    lease = take_lease(store, sid)
    cancelled = enqueue(store, sid, "cancel-me")
    store.inputs.cancel(sid, input_id=cancelled.input_id)
    store.commits.commit(
        append(sid, 2, lease.fence, [msg("b1", "root")], active_turn=ClearActiveTurn())
    )
    assert store.maintenance.tombstone_nodes(sid, store.sessions.orphaned_node_ids(sid)) == 1

    report = store.maintenance.vacuum(journal_retention_ms=0)
    assert report == VacuumReport(
        removed_nodes=1, removed_inputs=2, removed_queued_work=1, removed_journal_rows=1
    )
    assert store.maintenance.vacuum(journal_retention_ms=0) == VacuumReport()
    assert [i.source_key for i in store.inputs.list_all(sid)] == ["waiting"]
    assert [b.source_key for b in store.queue.list_batches(sid, include_done=True)] == [
        "ready-work"
    ]
    assert set(store.sessions.load(sid).graph.nodes) == {"root", "b1"}
    assert store.maintenance.count_rows("lash_queued_work_items", None) == 1


def test_vacuum_of_a_clean_store_reports_zeros(store: Store) -> None:
    """vacuum on a store with nothing to remove reports all zeros."""
    sid = new_session(store)
    commit_chain(store, take_lease(store, sid), "n1")
    enqueue(store, sid, "k1")
    assert store.maintenance.vacuum() == VacuumReport()
    assert len(store.sessions.load(sid).graph) == 1


def test_runnable_sessions_are_those_with_work_and_no_live_lease(store: Store) -> None:
    """runnable_sessions finds sessions with pending input, ready work or an active turn and no
    live lease; a live lease hides a session until it expires or is released."""
    idle = new_session(store, "idle")
    free = new_session(store, "free")
    leased = new_session(store, "leased")
    expiring = new_session(store, "expiring")
    working = new_session(store, "working")
    for sid in (free, leased, expiring):
        enqueue(store, sid, "k1")
    store.queue.enqueue(working, turn_work("w1"))
    take_lease(store, leased)
    take_lease(store, expiring, ttl_ms=SHORT_TTL_MS)
    take_lease(store, idle)

    found = {r.session_id: r.reasons for r in store.maintenance.runnable_sessions()}
    assert set(found) == {free, working}
    assert found[free] == ("pending_input",)
    assert found[working] == ("queued_work",)

    wait_past_expiry()
    assert {r.session_id for r in store.maintenance.runnable_sessions()} == {
        free,
        working,
        expiring,
    }


def test_runnable_sessions_include_an_unleased_active_turn(store: Store) -> None:
    """A session whose active turn lost its lease is runnable; completed input alone is not."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.commits.commit(
        unchanged(sid, 0, lease.fence, None, active_turn=start_turn("turn-1"), release_lease=True)
    )
    assert [(r.session_id, r.reasons) for r in store.maintenance.runnable_sessions()] == [
        (sid, ("active_turn",))
    ]
    lease = take_lease(store, sid)
    store.commits.commit(
        unchanged(sid, 1, lease.fence, None, active_turn=ClearActiveTurn(), release_lease=True)
    )
    assert store.maintenance.runnable_sessions() == []


def test_vacuum_keeps_terminal_inputs_inside_the_retention_window(store: Store) -> None:
    """Terminal inputs younger than the retention window survive vacuum; older ones go."""
    sid = new_session(store)
    row = enqueue(store, sid, "k-recent")
    assert store.inputs.cancel(sid, input_id=row.input_id).value == "cancelled"
    kept = store.maintenance.vacuum(input_retention_ms=3_600_000)
    assert kept.removed_inputs == 0
    assert [i.input_id for i in store.inputs.list_all(sid)] == [row.input_id]
    removed = store.maintenance.vacuum(input_retention_ms=0)
    assert removed.removed_inputs == 1
    assert store.inputs.list_all(sid) == []
