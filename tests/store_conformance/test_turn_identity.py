"""Store conformance: input ids are per session, and turn ids never repeat in a session."""

from __future__ import annotations

import pytest

from lash_tasks.errors import ConflictError, InputIdConflict
from lash_tasks.machine import ClearActiveTurn, TurnState
from lash_tasks.store.records import InputDraft
from lash_tasks.store.store import Store
from tests.store_conformance.support import new_session, take_lease, unchanged


def _draft(sid: str, key: str, input_id: str, text: str = "hi") -> InputDraft:
    return InputDraft(sid, key, {"text": text}, input_id=input_id)


def test_the_same_input_id_in_two_sessions_is_two_inputs(store: Store) -> None:
    """Input ids are unique per session: each session records and finds its own msg-1."""
    for sid in ("a", "b"):
        new_session(store, sid)
        store.inputs.enqueue(_draft(sid, "k1", "msg-1", text=f"to {sid}"))
    for sid in ("a", "b"):
        row = store.inputs.get(sid, "msg-1")
        assert row is not None and row.input == {"text": f"to {sid}"}
        assert [i.input_id for i in store.inputs.list_all(sid)] == ["msg-1"]


def test_an_input_id_still_in_use_is_a_typed_conflict(store: Store) -> None:
    """Reusing a live input id under another source key raises InputIdConflict, writes nothing."""
    sid = new_session(store)
    store.inputs.enqueue(_draft(sid, "k1", "msg-1"))
    with pytest.raises(InputIdConflict) as info:
        store.inputs.enqueue(_draft(sid, "k2", "msg-1", text="other"))
    assert info.value.details["input_id"] == "msg-1"
    assert [(i.source_key, i.input) for i in store.inputs.list_all(sid)] == [("k1", {"text": "hi"})]


def test_an_input_id_is_free_again_once_vacuumed(store: Store) -> None:
    """After vacuum removed its terminal row, an input id can be enqueued again."""
    sid = new_session(store)
    first = store.inputs.enqueue(_draft(sid, "k1", "msg-1"))
    store.inputs.cancel(sid, input_id=first.input_id)
    assert store.maintenance.vacuum().removed_inputs == 1
    again = store.inputs.enqueue(_draft(sid, "k1", "msg-1", text="again"))
    assert (again.input_id, again.state, again.input) == ("msg-1", "pending", {"text": "again"})


def test_begin_turn_never_repeats_a_turn_id_in_a_session(store: Store) -> None:
    """Turns that claimed the very same ids still get distinct ids, one per begin_turn."""
    sid = new_session(store)
    seen = []
    for head in range(3):
        lease = take_lease(store, sid)
        turn = store.turns.begin(
            lease.fence, "inputs", ["msg-1"], TurnState("", input_ids=(f"k{head}",))
        )
        assert store.turns.active(sid) == turn
        seen.append(turn.turn_id)
        store.commits.commit(
            unchanged(
                sid, head, lease.fence, None, active_turn=ClearActiveTurn(), release_lease=True
            )
        )
    assert len(set(seen)) == 3


def test_begin_turn_refuses_a_second_active_turn(store: Store) -> None:
    """begin_turn while a turn is active raises ConflictError and keeps the active turn."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    active = store.turns.begin(lease.fence, "inputs", ["msg-1"])
    with pytest.raises(ConflictError):
        store.turns.begin(lease.fence, "inputs", ["msg-2"])
    assert store.turns.active(sid) == active
