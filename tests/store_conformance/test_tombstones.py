"""Store conformance: tombstones never cut a path a turn is on or about to be on."""

from __future__ import annotations

from lash_tasks.machine import ClearActiveTurn, TurnState
from lash_tasks.store.records import ActivePath, InputDraft
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    append,
    commit_chain,
    msg,
    new_session,
    take_lease,
    unchanged,
)


def _branched(store: Store, sid: str) -> None:
    """root -> a1 -> a2 (orphaned branch), root -> b1 (active path)."""
    lease = take_lease(store, sid)
    commit_chain(store, lease, "root", "a1", "a2")
    store.commits.commit(append(sid, 1, lease.fence, [msg("b1", "root")], release_lease=True))


def _path(store: Store, sid: str) -> list[str]:
    return [n.node_id for n in store.sessions.load(sid, ActivePath()).graph.active_path()]


def test_append_under_a_tombstoned_node_revives_its_path(store: Store) -> None:
    """A commit that branches under tombstoned history un-tombstones the new active path,
    so it reads whole and vacuum leaves it alone."""
    sid = new_session(store)
    _branched(store, sid)
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 2
    lease = take_lease(store, sid)
    store.commits.commit(append(sid, 2, lease.fence, [msg("c1", "a2")], release_lease=True))
    assert _path(store, sid) == ["root", "a1", "a2", "c1"]
    assert store.sessions.load_node(sid, "a1") is not None
    assert store.maintenance.vacuum().removed_nodes == 0
    assert _path(store, sid) == ["root", "a1", "a2", "c1"]
    assert store.sessions.orphaned_node_ids(sid) == ["b1"]


def test_moving_the_leaf_onto_a_tombstoned_node_revives_its_path(store: Store) -> None:
    """A commit that only moves the leaf to tombstoned history brings that path back too."""
    sid = new_session(store)
    _branched(store, sid)
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 2
    lease = take_lease(store, sid)
    store.commits.commit(unchanged(sid, 2, lease.fence, "a2", release_lease=True))
    assert store.maintenance.vacuum().removed_nodes == 0
    assert _path(store, sid) == ["root", "a1", "a2"]


def test_tombstoning_spares_the_branch_point_of_the_active_turn(store: Store) -> None:
    """While the active turn is branching to a node, neither it nor its ancestors are
    tombstoned; once the turn ends they are ordinary orphans again."""
    sid = new_session(store)
    _branched(store, sid)
    lease = take_lease(store, sid)
    turn = TurnState("turn-1", branch_from="a2")
    store.commits.commit(unchanged(sid, 2, lease.fence, "b1", active_turn=turn))
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 0
    assert store.sessions.load_node(sid, "a2") is not None
    store.commits.commit(
        unchanged(sid, 3, lease.fence, "b1", active_turn=ClearActiveTurn(), release_lease=True)
    )
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 2


def test_tombstoning_spares_the_branch_point_of_a_waiting_input(store: Store) -> None:
    """A node that a pending input will branch to is not tombstoned until that input is
    answered or cancelled."""
    sid = new_session(store)
    _branched(store, sid)
    row = store.inputs.enqueue(InputDraft(sid, "k1", {"text": "again", "branch_from": "a1"}))
    assert store.maintenance.tombstone_nodes(sid, ["a1", "a2"]) == 1  # a2 is below the branch point
    assert (
        store.sessions.load_node(sid, "a1") is not None
        and store.sessions.load_node(sid, "a2") is None
    )
    store.inputs.cancel(sid, input_id=row.input_id)
    assert store.maintenance.tombstone_nodes(sid, ["a1"]) == 1
