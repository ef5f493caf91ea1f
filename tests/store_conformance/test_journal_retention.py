"""Store conformance: a committed turn's journal outlives any stale lease, no journal row
outlives its session, and a stale step cannot run an effect again."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, update

from lash_tasks.errors import EffectError
from lash_tasks.machine import TurnStamp
from lash_tasks.store import schema as t
from lash_tasks.store.records import ExecuteEffect, RecordedEffect
from lash_tasks.store.store import Store
from tests.store_conformance.support import new_session, take_lease, unchanged

TTL_MS = 60_000


def _prepare(store: Store, sid: str, turn_id: str, key: str) -> ExecuteEffect | RecordedEffect:
    return store.journal.prepare(
        scope_id=f"turn:{sid}:{turn_id}",
        replay_key=f"{sid}:{turn_id}:{key}",
        session_id=sid,
        turn_id=turn_id,
        envelope_hash="e" * 64,
        owner="worker-a",
        ttl_ms=30_000,
    )


def _journaled(store: Store, sid: str, turn_id: str, key: str = "0:llm_call:0") -> None:
    decision = _prepare(store, sid, turn_id, key)
    assert isinstance(decision, ExecuteEffect)
    store.journal.finalize(
        f"turn:{sid}:{turn_id}", f"{sid}:{turn_id}:{key}", decision.lease_token, outcome={}
    )


def _commit_turn(store: Store, sid: str, turn_id: str) -> None:
    lease = take_lease(store, sid)
    head = store.sessions.record(sid).head_revision
    stamp = TurnStamp(turn_id, "a" * 64, {"ok": True})
    store.commits.commit(
        unchanged(sid, head, lease.fence, None, turn_stamp=stamp, release_lease=True)
    )


def _stray_row(store: Store, sid: str, turn_id: str, created_at: int) -> None:
    """A journal row written by a stale step of an older build, straight into the table."""
    with store.database.engine.begin() as conn:
        conn.execute(
            insert(t.effect_journal).values(
                scope_id=f"turn:{sid}:{turn_id}",
                replay_key=f"{sid}:{turn_id}:0:llm_call:0",
                session_id=sid,
                turn_id=turn_id,
                envelope_hash="e" * 64,
                status="completed",
                outcome={},
                created_at=created_at,
                updated_at=created_at,
            )
        )


def test_vacuum_keeps_a_committed_turns_journal_for_the_retention(store: Store) -> None:
    """A committed turn's journal rows survive vacuum until the retention (the lease ttl) has
    passed since the commit, then go."""
    sid = new_session(store)
    _journaled(store, sid, "turn-1")
    _commit_turn(store, sid, "turn-1")
    assert store.maintenance.vacuum(journal_retention_ms=TTL_MS).removed_journal_rows == 0
    assert len(store.journal.entries(sid, "turn-1")) == 1

    with store.database.engine.begin() as conn:  # the commit is now one ttl and a moment old
        conn.execute(
            update(t.turn_commits).values(committed_at=t.turn_commits.c.committed_at - TTL_MS - 1)
        )
    assert store.maintenance.vacuum(journal_retention_ms=TTL_MS).removed_journal_rows == 1
    assert store.journal.entries(sid) == []


def test_vacuum_sweeps_journal_rows_whose_session_is_gone(store: Store) -> None:
    """Journal rows of a deleted session, or older than the session now under that id, are
    removed; the rows of a live session's running turn stay."""
    gone = new_session(store, "gone")
    _stray_row(store, gone, "turn-1", store.database.db_now_ms())
    store.sessions.delete(gone)
    _stray_row(store, gone, "turn-1", store.database.db_now_ms())  # re-inserted after the delete
    reborn = new_session(store, "reborn")
    _stray_row(store, reborn, "turn-old", store.sessions.record(reborn).created_at - 1)
    live = new_session(store, "live")
    _journaled(store, live, "turn-running")

    assert store.maintenance.vacuum().removed_journal_rows == 2
    assert store.maintenance.count_rows("lash_effect_journal", gone) == 0
    assert store.maintenance.count_rows("lash_effect_journal", reborn) == 0
    assert [e["turn_id"] for e in store.journal.entries(live)] == ["turn-running"]


def test_no_effect_runs_for_a_deleted_session(store: Store) -> None:
    """journal_prepare for a session that does not exist raises EffectError and writes nothing."""
    sid = new_session(store)
    store.sessions.delete(sid)
    with pytest.raises(EffectError):
        _prepare(store, sid, "turn-1", "0:llm_call:0")
    assert store.maintenance.count_rows("lash_effect_journal") == 0


def test_no_effect_runs_again_for_a_committed_turn(store: Store) -> None:
    """Once a turn is committed its recorded effects still replay, but no new or expired
    effect of that turn executes: only a stale step could ask."""
    sid = new_session(store)
    _journaled(store, sid, "turn-1")
    stale = _prepare(store, sid, "turn-1", "1:llm_call:0")
    assert isinstance(stale, ExecuteEffect)
    _commit_turn(store, sid, "turn-1")

    assert isinstance(_prepare(store, sid, "turn-1", "0:llm_call:0"), RecordedEffect)
    with pytest.raises(EffectError):
        _prepare(store, sid, "turn-1", "1:tool_call:0:c1")
    with store.database.engine.begin() as conn:  # the stale step's effect lease runs out
        conn.execute(update(t.effect_journal).values(lease_expires_at=0))
    with pytest.raises(EffectError):
        _prepare(store, sid, "turn-1", "1:llm_call:0")
    assert len(store.journal.entries(sid, "turn-1")) == 2
