"""Manifest rows on both dialects: intents, liveness, and the one-statement forget."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import event, insert

from lash_tasks.attachments import attachment_uri
from lash_tasks.errors import SessionNotFound, ValidationError
from lash_tasks.machine.ids import attachment_id_for
from lash_tasks.store import schema as t
from lash_tasks.store.store import Store
from tests.attachments.helpers import commit_turn, make_session

A = attachment_id_for(b"a")
B = attachment_id_for(b"b")
FAR_FUTURE = 2**53


def intent(store: Store, session: str, aid: str, kind: Any = None, owner: Any = None) -> None:
    store.manifest.record_intent(session, aid, attachment_uri(aid), kind, owner)


def add_process(store: Store, process_id: str, session_id: str, status: str) -> None:
    with store.database.tx() as conn:
        now = store.database.now_ms(conn)
        conn.execute(
            insert(t.processes).values(
                process_id=process_id,
                session_id=session_id,
                kind="background_tool",
                disposition="rerunnable",
                registration_hash="0" * 64,
                registration={},
                status=status,
                fencing_token=0,
                change_seq=0,
                created_at=now,
                updated_at=now,
            )
        )


def test_record_intent_inserts_then_refreshes_an_uncommitted_row(store: Store) -> None:
    """A second intent refreshes intent_at and takes over the owner of an uncommitted row."""
    make_session(store, "s1")
    intent(store, "s1", A, "turn", "t1")
    [first] = store.manifest.rows("s1")
    assert (first.uri, first.committed_at, first.owner_kind, first.owner_id) == (
        attachment_uri(A),
        None,
        "turn",
        "t1",
    )
    time.sleep(0.01)
    intent(store, "s1", A, "turn", "t2")
    [second] = store.manifest.rows("s1")
    assert second.intent_at > first.intent_at
    assert (second.owner_kind, second.owner_id, second.committed_at) == ("turn", "t2", None)


def test_record_intent_leaves_a_committed_row_committed(store: Store) -> None:
    """An intent for an already committed reference changes nothing."""
    make_session(store, "s1")
    intent(store, "s1", A, "turn", "t1")
    commit_turn(store, "s1", "t1")
    [committed] = store.manifest.rows("s1")
    assert committed.committed_at is not None
    intent(store, "s1", A, "turn", "t9")
    assert store.manifest.rows("s1") == [committed]


def test_record_intent_refuses_bad_input_and_missing_sessions(store: Store) -> None:
    """Bad ids or owners raise ValidationError; an unknown session raises SessionNotFound."""
    make_session(store, "s1")
    with pytest.raises(ValidationError):
        intent(store, "s1", "../../etc/passwd")
    with pytest.raises(ValidationError):
        intent(store, "s1", A, "turn", None)
    with pytest.raises(ValidationError):
        intent(store, "s1", A, "thread", "x")
    with pytest.raises(SessionNotFound):
        intent(store, "gone", A)
    assert store.manifest.rows("s1") == []


def test_holds_and_forget_are_per_session(store: Store) -> None:
    """forget_ref drops one session's row; the other session still holds the id."""
    make_session(store, "s1")
    make_session(store, "s2")
    intent(store, "s1", A)
    intent(store, "s2", A)
    assert store.manifest.holds_ref("s1", A) and store.manifest.holds_ref("s2", A)
    assert store.manifest.forget_ref("s1", A) is True
    assert store.manifest.forget_ref("s1", A) is False
    assert not store.manifest.holds_ref("s1", A) and store.manifest.holds_ref("s2", A)


def test_young_intents_are_live_whoever_owns_them(store: Store) -> None:
    """Within the cutoff every intent is a root, even an ownerless one."""
    make_session(store, "s1")
    intent(store, "s1", A)
    assert store.manifest.has_live_ref(A, cutoff_ms=0)
    assert store.manifest.live_attachment_ids(0) == {A}
    assert store.manifest.forget_dead_intents(0) == 0


def test_old_ownerless_intents_are_dead(store: Store) -> None:
    """Without an owner, age alone decides."""
    make_session(store, "s1")
    intent(store, "s1", A)
    assert not store.manifest.has_live_ref(A, FAR_FUTURE)
    assert store.manifest.live_attachment_ids(FAR_FUTURE) == set()
    assert store.manifest.forget_dead_intents(FAR_FUTURE) == 1
    assert store.manifest.rows("s1") == []


def test_old_turn_intents_die_only_after_a_later_different_turn_commits(store: Store) -> None:
    """Age is not enough for a turn-owned intent: a later commit of another turn is needed."""
    make_session(store, "s1")
    make_session(store, "s2")
    intent(store, "s1", A, "turn", "t1")
    commit_turn(store, "s2", "t2")  # another session's commits prove nothing
    assert store.manifest.has_live_ref(A, FAR_FUTURE)
    assert store.manifest.forget_dead_intents(FAR_FUTURE) == 0
    time.sleep(0.005)
    commit_turn(store, "s1", "t2")
    assert not store.manifest.has_live_ref(A, FAR_FUTURE)
    assert store.manifest.has_live_ref(A, 0), "still within the cutoff"
    assert store.manifest.forget_dead_intents(FAR_FUTURE) == 1


def test_an_intent_newer_than_the_later_commit_stays_live(store: Store) -> None:
    """A turn commit older than the intent does not kill it (committed_at must be later)."""
    make_session(store, "s1")
    commit_turn(store, "s1", "t0")
    time.sleep(0.005)
    intent(store, "s1", A, "turn", "t1")
    assert store.manifest.has_live_ref(A, FAR_FUTURE)
    assert store.manifest.forget_dead_intents(FAR_FUTURE) == 0


@pytest.mark.parametrize(
    ("status", "dead"),
    [
        ("pending", False),
        ("running", False),
        ("completed", True),
        ("failed", True),
        ("cancelled", True),
        ("abandoned", True),
        (None, True),
    ],
)
def test_process_intents_die_with_their_process(
    store: Store, status: str | None, dead: bool
) -> None:
    """A process-owned old intent is dead once the process is terminal or missing."""
    make_session(store, "s1")
    if status is not None:
        add_process(store, "p1", "s1", status)
    intent(store, "s1", A, "process", "p1")
    assert store.manifest.has_live_ref(A, FAR_FUTURE) is not dead
    assert (A in store.manifest.live_attachment_ids(FAR_FUTURE)) is not dead
    assert store.manifest.forget_dead_intents(FAR_FUTURE) == int(dead)


def test_committed_rows_are_always_live(store: Store) -> None:
    """A committed row is a root at any cutoff and is never forgotten as an intent."""
    make_session(store, "s1")
    intent(store, "s1", A, "turn", "t1")
    intent(store, "s1", B)
    commit_turn(store, "s1", "t1")
    commit_turn(store, "s1", "t2")
    assert store.manifest.live_attachment_ids(FAR_FUTURE) == {A}
    assert store.manifest.forget_dead_intents(FAR_FUTURE) == 1
    assert [r.attachment_id for r in store.manifest.rows("s1")] == [A]


def test_forget_dead_intents_is_one_delete_statement(store: Store) -> None:
    """The forget never reads before deleting: exactly one DELETE and no SELECT."""
    make_session(store, "s1")
    intent(store, "s1", A)
    intent(store, "s1", B, "turn", "t1")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.strip().split()[0].upper())

    event.listen(store.database.engine, "before_cursor_execute", record)
    try:
        assert store.manifest.forget_dead_intents(FAR_FUTURE) == 1
    finally:
        event.remove(store.database.engine, "before_cursor_execute", record)
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["DELETE"]


def test_delete_session_removes_its_rows_and_blocks_new_intents(store: Store) -> None:
    """After delete_session no row of the session remains and a late intent is refused."""
    make_session(store, "s1")
    intent(store, "s1", A)
    store.sessions.delete("s1")
    assert store.manifest.rows("s1") == []
    with pytest.raises(SessionNotFound):
        intent(store, "s1", B)
