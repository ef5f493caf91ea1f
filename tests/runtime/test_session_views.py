"""The session view shows a running turn: its claimed inputs, steps and last error (both
dialects)."""

from __future__ import annotations

import pytest

from lash_tasks.errors import ProviderError
from lash_tasks.ingress import reads
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import InputDraft
from tests.runtime.conftest import Harness

RULES = (
    '[{"match": "calc", "tool_calls": [{"name": "calculator", "arguments": {"expression": "1"}}]},'
    ' {"match": "steer", "fail_first": 1, "fail_status": 503}]'
)


def test_the_view_shows_the_active_turn_its_inputs_steps_and_error(harness: Harness) -> None:
    core, _ = harness.core(RULES)
    sid = harness.session()
    first = harness.enqueue(sid, "calc please")
    assert run_step(core, sid).status == "progressed"
    steer = harness.store.inputs.enqueue(
        InputDraft(sid, "k-steer", {"text": "steer it"}, ingress="active_turn")
    )
    with pytest.raises(ProviderError):  # the steered step's call fails, to be retried
        run_step(core, sid, final_attempt=False)
    view = reads.session_view(harness.store, sid)
    turn = view.active_turn
    assert turn is not None
    assert turn.claimed_input_ids == [first.input_id, steer.input_id]
    assert (turn.steps_committed, turn.attempts, turn.cancel_requested) == (1, 1, False)
    assert turn.error is not None and turn.error.startswith("provider_error: ")
    assert view.pending_inputs == []
    status = reads.fleet_status(harness.store)
    assert (status.pending_inputs, status.active_turns) == (0, 1)
    [summary] = reads.session_list(harness.store, activity="running")
    assert summary.session_id == sid
    harness.run_until_settled(core, sid)
    assert reads.session_view(harness.store, sid).active_turn is None
