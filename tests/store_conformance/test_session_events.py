"""Store conformance: the database event log (no Redis) written by commits and read back."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from lash_tasks.errors import HeadRevisionConflict, InvalidCursor
from lash_tasks.events.database_source import DatabaseEventSource
from lash_tasks.events.emitter import StepEvents
from lash_tasks.events.publisher import NullEventPublisher
from lash_tasks.events.sources import read
from lash_tasks.events.vocabulary import SessionEvent
from lash_tasks.machine import ClearActiveTurn, TurnStamp
from lash_tasks.store import schema as t
from lash_tasks.store.records import Lease
from lash_tasks.store.store import Store
from tests.store_conformance.support import append, msg, new_session, take_lease, unchanged


def view(session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "head_revision": -1}


def step_events(sid: str, turn: str = "turn-1", step: int = 0) -> StepEvents:
    return StepEvents(NullEventPublisher(), True, sid, turn, step)


def commit_step(
    store: Store, lease: Lease, texts: list[str], outcome: dict[str, Any] | None = None
) -> StepEvents:
    """One step of a turn that streamed `texts`, called a tool, and committed."""
    sid = lease.session_id
    record = store.sessions.record(sid)
    events = step_events(sid)
    for text in texts:
        events.text_delta(text)
    events.tool_call_started("call-1", "calculator")
    events.tool_call_finished("call-1", "calculator", 3)
    node = msg(f"n{record.head_revision}", record.leaf_node_id, "".join(texts), "assistant")
    store.commits.commit(
        append(
            sid,
            record.head_revision,
            lease.fence,
            [node],
            events=events.commit_events(record.head_revision + 1, outcome, ["in-1"]),
        )
    )
    return events


def rows(store: Store, sid: str) -> list[Any]:
    e = t.session_events
    with store.database.engine.connect() as conn:
        return list(conn.execute(select(e).where(e.c.session_id == sid).order_by(e.c.seq)))


def events_of(store: Store, sid: str, cursor: str | None = None) -> list[SessionEvent]:
    return list(
        read(DatabaseEventSource(store.events, view, poll_s=0.01), sid, cursor, timeout=0.05)
    )


def test_a_commit_writes_its_committed_events_numbered_per_session(store: Store) -> None:
    """Commit events get seq 1, 2, 3 … per session, in order, stamped by the DB clock."""
    new_session(store, "a")
    new_session(store, "b")
    before = store.database.db_now_ms()
    commit_step(store, take_lease(store, "a"), ["Hel", "lo"])
    commit_step(store, take_lease(store, "b"), ["x"])
    commit_step(store, take_lease(store, "a"), ["again"], {"status": "finished", "text": "ok"})
    after = store.database.db_now_ms()
    a = rows(store, "a")
    assert [r.seq for r in a] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.event["type"] for r in a] == [
        "tool_call_started",
        "tool_call_finished",
        "step_committed",
        "tool_call_started",
        "tool_call_finished",
        "step_committed",
        "turn_finished",
    ]
    assert all(before <= r.created_at <= after for r in a)
    assert [r.seq for r in rows(store, "b")] == [1, 2, 3]


def test_text_deltas_never_reach_the_database_log(store: Store) -> None:
    """Provisional text deltas are not committed events: the log has none."""
    sid = new_session(store)
    commit_step(store, take_lease(store, sid), ["a", "b", "c"])
    assert "text_delta" not in {r.event["type"] for r in rows(store, sid)}


def test_a_failed_commit_writes_no_events(store: Store) -> None:
    """A commit refused by its head-revision check leaves the event log untouched."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    events = step_events(sid)
    events.tool_call_started("c", "calculator")
    with pytest.raises(HeadRevisionConflict):
        store.commits.commit(
            append(sid, 7, lease.fence, [msg("r", None)], events=events.commit_events(8))
        )
    assert rows(store, sid) == []


def test_a_replayed_final_commit_writes_its_events_once(store: Store) -> None:
    """The same final commit applied twice (turn stamp replay) logs its events once."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    events = step_events(sid)
    records = events.commit_events(1, {"status": "finished", "text": "hi"}, ["in-1"])
    stamp = TurnStamp("turn-1", "h" * 64, {"outcome": {"status": "finished"}})
    draft = append(
        sid,
        0,
        lease.fence,
        [msg("r", None)],
        turn_stamp=stamp,
        events=records,
        active_turn=ClearActiveTurn(),
    )
    first = store.commits.commit(draft)
    again = store.commits.commit(draft)
    assert again.replayed and again.head_revision == first.head_revision
    assert [r.event["type"] for r in rows(store, sid)] == ["step_committed", "turn_finished"]


def test_the_reader_yields_committed_events_in_order_and_resumes_after_a_cursor(
    store: Store,
) -> None:
    """read() yields logged events in order with db-<seq> cursors and resumes after a cursor."""
    sid = new_session(store)
    assert DatabaseEventSource(store.events, view).tail(sid) == "db-0"
    commit_step(store, take_lease(store, sid), ["a"])
    commit_step(store, take_lease(store, sid), ["b"], {"status": "finished", "text": "ab"})
    everything = events_of(store, sid)
    assert [e.cursor for e in everything] == [f"db-{i}" for i in range(1, 8)]
    assert everything[-1].type == "turn_finished"
    assert everything[-1].outcome == {"status": "finished", "text": "ab"}
    assert events_of(store, sid, "db-5") == everything[5:]
    assert DatabaseEventSource(store.events, view).tail(sid) == "db-7"
    assert events_of(store, sid, "db-7") == []


def test_vacuum_drops_old_events_but_keeps_each_sessions_last(store: Store) -> None:
    """vacuum removes events past the retention except each session's last `event_keep`."""
    sid = new_session(store)
    for _ in range(4):
        commit_step(store, take_lease(store, sid), ["x"])  # 12 events
    young = new_session(store, "young")
    commit_step(store, take_lease(store, young), ["y"])
    with store.database.engine.begin() as conn:
        conn.execute(
            update(t.session_events)
            .where(t.session_events.c.session_id == sid)
            .values(created_at=0)
        )
    report = store.maintenance.vacuum(event_retention_ms=60_000, event_keep=5)
    assert report.removed_events == 7
    assert [r.seq for r in rows(store, sid)] == [8, 9, 10, 11, 12]
    assert len(rows(store, young)) == 3
    assert store.maintenance.vacuum(event_retention_ms=60_000, event_keep=5).removed_events == 0


def test_a_cursor_before_vacuumed_events_yields_a_gap_with_the_view(store: Store) -> None:
    """A cursor before vacuumed events yields `gap` with the view, then the oldest kept events."""
    sid = new_session(store)
    for _ in range(3):
        commit_step(store, take_lease(store, sid), ["x"])  # events 1..9
    with store.database.engine.begin() as conn:
        conn.execute(update(t.session_events).values(created_at=0))
    store.maintenance.vacuum(event_retention_ms=60_000, event_keep=4)  # keeps 6..9
    events = events_of(store, sid, "db-2")
    assert events[0].type == "gap"
    assert events[0].view == view(sid) and events[0].cursor == "db-5"
    assert [e.cursor for e in events[1:]] == ["db-6", "db-7", "db-8", "db-9"]
    assert [e.type for e in events_of(store, sid, "db-5")][:1] == ["step_committed"]


def test_bad_cursors_are_refused_and_nothing_is_read(store: Store) -> None:
    """A cursor past the last event, malformed, or in stream-id form raises InvalidCursor."""
    sid = new_session(store)
    commit_step(store, take_lease(store, sid), ["x"])
    source = DatabaseEventSource(store.events, view)
    with pytest.raises(InvalidCursor, match="ahead of the event log"):
        read(source, sid, "db-4")
    with pytest.raises(InvalidCursor, match="malformed"):
        read(source, sid, "db-")
    with pytest.raises(InvalidCursor, match="Redis Stream id"):
        read(source, sid, "1700000000000-0")


def test_a_commit_without_events_writes_none(store: Store) -> None:
    """A commit whose draft carries no events (Redis carries them) adds no log rows."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    store.commits.commit(unchanged(sid, 0, lease.fence, None))
    assert rows(store, sid) == []
