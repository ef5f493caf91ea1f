"""A turn step that fails the same way every time ends its turn after a bounded number of
attempts, even when the failure kills the worker process running it."""

from __future__ import annotations

import json

import pytest

from tests.fleet.harness import TESTS_ON_PATH, Fleet, transcript_pairs, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(150)]

MAX_ATTEMPTS = 3


def test_a_step_that_kills_its_worker_every_time_ends_its_turn(fleet: Fleet) -> None:
    """A tool that kills its prefork child on every run: redelivery and the sweeper retry
    the step, but after LASH_STEP_MAX_ATTEMPTS starts the turn ends stopped(runtime_error)
    with the reason, its input completed, and the session's next input is answered."""
    fault_log = fleet.home / "faults.log"
    fleet.extra_env.update(
        LASH_SCRIPTED_RULES=json.dumps(
            [{"match": "crash", "tool_calls": [{"name": "exit_process", "arguments": {}}]}]
        ),
        LASH_TOOLS="tests.tools.lash_test_tool_faults:FaultTools",
        **TESTS_ON_PATH,
        LASH_STEP_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        LASH_TEST_FAULT_LOG=str(fault_log),
    )
    worker = fleet.start_worker("pf", pool="prefork", concurrency=2)
    beat = fleet.start_beat()
    worker.wait_ready()
    beat.wait_ready()
    client = fleet.client()
    sid = "crash-loop"
    client.create_session(sid)

    crashing = client.enqueue_turn(sid, "crash please")
    answer = client.wait_for_input(sid, crashing, timeout=100)

    assert answer.state == "completed"
    assert answer.outcome is not None
    assert (answer.outcome["status"], answer.outcome["reason"]) == ("stopped", "runtime_error")
    assert f"failed {MAX_ATTEMPTS} times" in answer.outcome["text"]
    assert "worker was lost" in answer.outcome["text"]
    runs = fault_log.read_text().splitlines()
    assert len(runs) == MAX_ATTEMPTS, runs
    assert len({line.split()[0] for line in runs}) == MAX_ATTEMPTS  # a new child each time
    assert client.store.turns.active(sid) is None

    later = client.enqueue_turn(sid, "hello again")
    follow = client.wait_for_input(sid, later, timeout=30)
    assert follow.outcome is not None and follow.outcome["text"] == "echo: hello again"
    pairs = transcript_pairs(client, sid)
    assert pairs[0] == ("user", "crash please")
    assert pairs[-2:] == [("user", "hello again"), ("assistant", "echo: hello again")]
    assert [i.state for i in client.store.inputs.list_all(sid)] == ["completed", "completed"]
    assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 2
    assert worker.alive(), "the main process survives its children"
    wait_until(lambda: not fleet.live_leases(client.store, [sid]), 10, "the lease to be released")
    assert len(fault_log.read_text().splitlines()) == MAX_ATTEMPTS
    client.close()
