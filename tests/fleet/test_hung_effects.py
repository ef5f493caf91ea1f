"""One hung call must not pin its session through another session's steps in the same
worker: past its step time limit nothing renews its effect lease, and another worker
takes the session over within a lease ttl."""

from __future__ import annotations

import json
import socket
import time

import pytest

from lash_tasks.client import Client
from tests.fleet.harness import TESTS_ON_PATH, Fleet, transcript_pairs, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(180)]

STEP_LIMIT_S = 10  # the smallest LASH_STEP_TIME_LIMIT_S
TTL_S = 3  # the fleet's LASH_LEASE_TTL_MS
# A sweep interval (2 s), a poke landing on the stuck worker and handed back (1 s), the
# step's own work, a loaded machine.
SLACK_S = 6


def tool_running(client: Client, sid: str) -> bool:
    return any(
        e["status"] == "in_progress" and ":tool_call:" in e["replay_key"]
        for e in client.store.journal.entries(sid)
    )


def test_hung_tool_is_taken_over_while_another_session_keeps_its_worker_busy(
    fleet: Fleet,
) -> None:
    """Worker 1 (threads pool) hangs in session A's tool; B's step, started on the same
    worker after A's step limit, hangs too and keeps its keeper running. A is still taken
    over by worker 2 and finished within its step limit + ttl + slack, then B as well."""
    fleet.extra_env.update(
        LASH_SCRIPTED_RULES=json.dumps(
            [{"match": "hang", "tool_calls": [{"name": "hang_here", "arguments": {}}]}]
        ),
        LASH_TOOLS="tests.tools.lash_test_tool_faults:FaultTools",
        **TESTS_ON_PATH,
        LASH_STEP_TIME_LIMIT_S=str(STEP_LIMIT_S),
    )
    stuck = fleet.start_worker("stuck", concurrency=4, LASH_TEST_HANG_TOOL="1")
    # The second worker starts now (starting one can take seconds on a busy machine) but
    # takes no step until it is told to consume lash.turns.
    fresh = fleet.start_worker("fresh", concurrency=2, queues="lash.maintenance")
    beat = fleet.start_beat()
    for process in (stuck, fresh, beat):
        process.wait_ready()
    client = fleet.client()
    for sid in ("a", "b"):
        client.create_session(sid)

    # Given A hung in its tool on the stuck worker,
    input_a = client.enqueue_turn("a", "hang in A")
    wait_until(lambda: tool_running(client, "a"), 20, "A's tool to start", poll=0.05)
    started = time.monotonic()
    assert client.store.leases.state("a")[0] == stuck.owner_id
    # and B hung on the same worker after A's step limit, before A's effect lease ran out,
    time.sleep(STEP_LIMIT_S + 0.5)
    input_b = client.enqueue_turn("b", "hang in B")
    wait_until(lambda: tool_running(client, "b"), 5, "B's tool to start", poll=0.05)
    assert client.store.leases.state("b")[0] == stuck.owner_id

    # When a second worker starts taking steps,
    replies = fleet.publisher().control.add_consumer(
        "lash.turns", destination=[f"fresh@{socket.gethostname()}"], reply=True, timeout=10
    )
    assert replies, "the second worker did not answer"

    # Then it finishes A within A's step limit, one lease ttl and some slack,
    answer_a = client.wait_for_input("a", input_a, timeout=60)
    took_a = time.monotonic() - started
    assert answer_a.outcome is not None and answer_a.outcome["text"] == "done: not hung"
    assert took_a < STEP_LIMIT_S + TTL_S + SLACK_S, f"A took {took_a:.1f} s"
    # and B after B's own limit.
    answer_b = client.wait_for_input("b", input_b, timeout=60)
    assert answer_b.outcome is not None and answer_b.outcome["text"] == "done: not hung"

    for sid, text in (("a", "hang in A"), ("b", "hang in B")):
        assert transcript_pairs(client, sid) == [
            ("user", text),
            ("assistant", ""),
            ("tool", "not hung"),
            ("assistant", "done: not hung"),
        ]
        assert client.store.turns.active(sid) is None
        assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 1
        journal = client.store.journal.entries(sid)
        assert len(journal) == 3 and {e["status"] for e in journal} == {"completed"}
    assert stuck.alive() and fresh.alive()
    stuck.kill()  # its two threads never return; a warm shutdown would wait on them
    client.close()
