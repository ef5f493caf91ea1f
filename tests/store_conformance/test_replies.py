"""Store conformance: the reply outbox, written by a final commit, sent at least once."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from lash_tasks.errors import LeaseLost
from lash_tasks.machine import OutboxReply, TurnStamp
from lash_tasks.store import schema as t
from lash_tasks.store.store import Store
from tests.store_conformance.support import append, msg, new_session, take_lease


def _reply(sid: str, input_id: str) -> OutboxReply:
    key = f"{sid}:turn-1:{input_id}"
    return OutboxReply(sid, key, "app.answers", "app", {"idempotency_key": key, "text": "42"})


def test_a_final_commit_writes_its_replies_once(store: Store) -> None:
    """The commit's replies become unsent outbox rows; replaying the commit adds none."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    replies = (_reply(sid, "in_1"), _reply(sid, "in_2"))
    stamp = TurnStamp("turn-1", "a" * 64, {"answer": "42"})
    draft = append(sid, 0, lease.fence, [msg("n1", None)], turn_stamp=stamp, replies=replies)
    store.commits.commit(draft)
    assert store.commits.commit(draft).replayed
    rows = store.replies.list(sid)
    assert [r.reply for r in rows] == list(replies)
    assert all(r.sent_at is None and r.attempts == 0 for r in rows)
    assert store.replies.unsent() == list(replies)


def test_a_refused_commit_writes_no_reply(store: Store) -> None:
    """A commit whose fence does not hold writes nothing, its replies included."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.leases.release(lease.fence)
    draft = append(sid, 0, lease.fence, [msg("n1", None)], replies=(_reply(sid, "in_1"),))
    with pytest.raises(LeaseLost):
        store.commits.commit(draft)
    assert store.replies.list(sid) == []


def test_unsent_replies_wait_their_grace_then_are_marked_sent(store: Store) -> None:
    """`unsent(older_than)` leaves young rows to their worker; `mark_sent` counts each send;
    vacuum removes sent rows past the retention, never unsent ones."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    first, second = _reply(sid, "in_1"), _reply(sid, "in_2")
    store.commits.commit(append(sid, 0, lease.fence, [msg("n1", None)], replies=(first, second)))
    assert store.replies.unsent(older_than_ms=60_000) == []
    r = t.reply_outbox
    with store.database.engine.begin() as conn:
        conn.execute(update(r).values(created_at=r.c.created_at - 120_000))
    assert store.replies.unsent(older_than_ms=60_000) == [first, second]
    store.replies.mark_sent([first])
    store.replies.mark_sent([first])
    assert store.replies.unsent() == [second]
    assert [r.attempts for r in store.replies.list(sid)] == [2, 0]
    assert store.maintenance.vacuum(input_retention_ms=60_000).removed_replies == 0
    assert store.maintenance.vacuum().removed_replies == 1
    assert [r.reply for r in store.replies.list(sid)] == [second]


def test_deleting_a_session_deletes_its_replies(store: Store) -> None:
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.commits.commit(
        append(sid, 0, lease.fence, [msg("n1", None)], replies=(_reply(sid, "i"),))
    )
    store.sessions.delete(sid)
    assert store.maintenance.count_rows("lash_reply_outbox") == 0
