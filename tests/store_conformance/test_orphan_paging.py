"""Store conformance: the orphan job's two primitives — paging changed sessions and
tombstoning old orphans by their age on the database clock."""

from __future__ import annotations

from sqlalchemy import update

from lash_tasks.store import schema as t
from lash_tasks.store.records import ActivePath, InputDraft
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    CREATED_AT,
    append,
    commit_chain,
    msg,
    new_session,
    take_lease,
)

HOUR_MS = 3_600_000


def _set_changed_at(store: Store, changed: dict[str, int]) -> None:
    with store.database.engine.begin() as conn:
        for sid, at in changed.items():
            conn.execute(
                update(t.sessions).where(t.sessions.c.session_id == sid).values(graph_changed_at=at)
            )


def test_changed_session_pages_cover_the_window_once_each(store: Store) -> None:
    """Pages of `limit` rows, each after the last row of the previous page, return every
    session changed inside [since, until] exactly once, ties on one timestamp included."""
    changed = {"early": 50, "a": 100, "b": 100, "c": 100, "d": 100, "e": 200, "late": 900}
    for sid in changed:
        new_session(store, sid)
    _set_changed_at(store, changed)

    seen: list[str] = []
    pages = 0
    after = None
    while page := store.maintenance.changed_sessions_page(100, 200, after, limit=2):
        assert len(page) <= 2
        pages += 1
        seen.extend(sid for _, sid in page)
        after = page[-1]
    assert seen == ["a", "b", "c", "d", "e"]
    assert pages == 3


def _branched(store: Store, sid: str) -> None:
    """root -> a1 -> a2 (orphaned branch), root -> b1 (active path); every node's own
    `created_at` says 2025, long before any retention window."""
    lease = take_lease(store, sid)
    commit_chain(store, lease, "root", "a1", "a2")
    store.commits.commit(append(sid, 1, lease.fence, [msg("b1", "root")], release_lease=True))
    assert store.sessions.load(sid).graph.nodes["a1"].created_at == CREATED_AT


def _age(store: Store, sid: str, by_ms: int) -> None:
    with store.database.engine.begin() as conn:
        conn.execute(
            update(t.graph_nodes)
            .where(t.graph_nodes.c.session_id == sid)
            .values(created_ms=t.graph_nodes.c.created_ms - by_ms)
        )


def test_orphan_age_is_read_from_the_database_clock(store: Store) -> None:
    """Orphans whose writer stamped an old created_at but that the database recorded just now
    are young: they are tombstoned only once their database age passes the retention."""
    sid = new_session(store)
    _branched(store, sid)
    assert store.maintenance.tombstone_old_orphans(sid, HOUR_MS) == 0
    _age(store, sid, HOUR_MS + 1)
    assert store.maintenance.tombstone_old_orphans(sid, HOUR_MS) == 2
    assert set(store.sessions.load(sid).graph.nodes) == {"root", "b1"}
    assert [n.node_id for n in store.sessions.load(sid, ActivePath()).graph.active_path()] == [
        "root",
        "b1",
    ]


def test_old_orphans_on_a_pending_branch_are_kept(store: Store) -> None:
    """An old orphan that a waiting input will branch to, and its ancestors, are not
    tombstoned; the branch below it is."""
    sid = new_session(store)
    _branched(store, sid)
    _age(store, sid, HOUR_MS + 1)
    store.inputs.enqueue(InputDraft(sid, "k1", {"text": "again", "branch_from": "a1"}))
    assert store.maintenance.tombstone_old_orphans(sid, HOUR_MS) == 1
    assert (
        store.sessions.load_node(sid, "a1") is not None
        and store.sessions.load_node(sid, "a2") is None
    )
