"""The backlog read for metrics: what waits, and for how long, by the database clock."""

from __future__ import annotations

from sqlalchemy import update

from lash_tasks.store import schema as t
from lash_tasks.store.backlog import Backlog
from lash_tasks.store.store import Store
from tests.store_conformance.support import enqueue, new_session


def test_an_empty_store_has_no_backlog(store: Store) -> None:
    """Nothing stored: every count is 0 and the oldest age is 0."""
    snapshot = Backlog(store.database).snapshot()
    assert snapshot.pending_inputs == 0
    assert snapshot.oldest_pending_input_age_s == 0.0
    assert (snapshot.ready_queued_work, snapshot.active_turns, snapshot.sessions) == (0, 0, 0)


def test_only_waiting_inputs_count_and_the_oldest_age_is_by_the_database_clock(
    store: Store,
) -> None:
    """Pending inputs count, cancelled ones do not; the oldest age is now - its enqueue time."""
    new_session(store, "s1")
    new_session(store, "s2")
    first = enqueue(store, "s1", "one")
    enqueue(store, "s2", "two")
    gone = enqueue(store, "s2", "three")
    store.inputs.cancel("s2", input_id=gone.input_id)
    # Given: the first input was enqueued 90 s ago (written, not waited for)
    with store.database.tx() as conn:
        now = store.database.now_ms(conn)
        conn.execute(
            update(t.pending_inputs)
            .where(t.pending_inputs.c.input_id == first.input_id)
            .values(enqueued_at=now - 90_000)
        )

    snapshot = Backlog(store.database).snapshot()

    assert snapshot.pending_inputs == 2
    assert snapshot.sessions == 2
    assert 90 <= snapshot.oldest_pending_input_age_s < 120
