"""Store conformance: the active turn counts the starts of its current step, remembers why
it last failed, and reports its cancel flag."""

from __future__ import annotations

import pytest

from lash_tasks.errors import LeaseLost
from lash_tasks.machine import CommitDraft, Fence, GraphUnchanged, TurnState
from lash_tasks.store.store import Store
from tests.store_conformance.support import expire_soon, new_session, take_lease


def begin(store: Store, fence: Fence) -> str:
    """Begin a turn with nothing claimed; returns the id the store gave it."""
    return store.turns.begin(fence, "inputs", ["in-1"]).turn_id


def test_begin_counts_the_first_attempt_and_each_resume_another(store: Store) -> None:
    """begin_turn records attempt 1; every restamp (a step resuming the turn) adds one."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    begin(store, lease.fence)
    assert store.turns.step_attempts(sid) is not None
    assert store.turns.step_attempts(sid).number == 1  # type: ignore[union-attr]
    assert store.turns.restamp_claims(lease.fence, None, None).number == 2
    assert store.turns.restamp_claims(lease.fence, None, None).number == 3
    assert store.turns.step_attempts(sid).number == 3  # type: ignore[union-attr]


def test_a_progress_commit_resets_the_count_and_the_last_error(store: Store) -> None:
    """Committing a step starts the next one at zero attempts with no recorded failure."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    turn = begin(store, lease.fence)
    store.turns.record_step_failure(lease.fence, turn, {"code": "boom", "message": "it broke"})
    store.turns.restamp_claims(lease.fence, None, None)
    store.commits.commit(
        CommitDraft(
            sid,
            0,
            lease.fence,
            GraphUnchanged(None),
            active_turn=TurnState(turn, step_index=1),
        )
    )
    counted = store.turns.step_attempts(sid)
    assert counted is not None and (counted.number, counted.last_error) == (0, None)
    assert store.turns.restamp_claims(lease.fence, None, None).number == 1


def test_restamp_returns_the_last_recorded_failure(store: Store) -> None:
    """The failure a step records is what the next attempt of that step is told."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    turn = begin(store, lease.fence)
    store.turns.record_step_failure(lease.fence, turn, {"code": "boom", "message": "x" * 5000})
    attempt = store.turns.restamp_claims(lease.fence, None, None)
    assert attempt.last_error is not None
    assert attempt.last_error["code"] == "boom"
    assert attempt.last_error["message"] == "x" * 1000  # bounded


def test_recording_a_failure_needs_the_lease(store: Store) -> None:
    """A step whose lease is gone cannot write the turn's last error."""
    sid = new_session(store)
    stale = expire_soon(store, sid)
    fresh = take_lease(store, sid, "worker-b")
    turn = begin(store, fresh.fence)
    with pytest.raises(LeaseLost):
        store.turns.record_step_failure(stale.fence, turn, {"code": "late", "message": "late"})
    counted = store.turns.step_attempts(sid)
    assert counted is not None and counted.last_error is None


def test_forgiving_takes_back_one_attempt_of_the_same_step_only(store: Store) -> None:
    """forgive_step_attempt decrements only for the named turn and step, never below zero."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    turn = begin(store, lease.fence)
    store.turns.restamp_claims(lease.fence, None, None)
    store.turns.forgive_step_attempt(sid, turn, 0)
    assert store.turns.step_attempts(sid).number == 1  # type: ignore[union-attr]
    store.turns.forgive_step_attempt(sid, "other-turn", 0)
    store.turns.forgive_step_attempt(sid, turn, 1)
    assert store.turns.step_attempts(sid).number == 1  # type: ignore[union-attr]
    store.turns.forgive_step_attempt(sid, turn, 0)
    store.turns.forgive_step_attempt(sid, turn, 0)
    assert store.turns.step_attempts(sid).number == 0  # type: ignore[union-attr]


def test_cancel_requested_reads_the_flag_of_the_named_turn(store: Store) -> None:
    """cancel_requested is false until request_cancel, and false for another turn id."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    turn = begin(store, lease.fence)
    assert store.turns.cancel_requested(sid, turn) is False
    assert store.turns.request_cancel(sid) is True
    assert store.turns.cancel_requested(sid, turn) is True
    assert store.turns.cancel_requested(sid, "turn-2") is False
    assert store.turns.cancel_requested("no-such-session", turn) is False
