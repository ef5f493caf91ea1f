"""Subagents on real workers: a parent turn spawns three; each child runs on the fleet,
completes its process once, and its result reaches the parent's running turn, whose final
answer uses all three."""

from __future__ import annotations

import json

import pytest

from lash_tasks.machine.processes import ProcessStatus
from tests.fleet.harness import Fleet, all_inputs_done, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(240)]

# The parent spawns three subagents, then waits (short sleeps, one step each) until all
# three results have joined its turn, and answers with them. Each child answers its job.
DELEGATE_AND_WAIT = json.dumps(
    [
        {
            "match": "please delegate",
            "tool_calls": [
                {"name": "spawn_subagent", "arguments": {"task": f"job-{i}"}} for i in range(3)
            ],
        },
        *({"match": f"job-{i}", "text": f"RESULT-{i}"} for i in range(3)),
        {
            "match": "",
            "repeat_tool": True,
            "until": {"text": "RESULT-", "count": 3},
            "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 300}}],
        },
        {"match": "", "repeat_tool": True, "gather": "RESULT-"},
    ]
)


def test_three_subagents_report_to_the_running_parent_turn(fleet: Fleet) -> None:
    """3 subagents spawned in one step run on 2 workers; each process completes once and
    wakes the parent once; the parent's one turn takes all three results at its step
    boundaries, and its final answer is made of them."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = DELEGATE_AND_WAIT
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    for worker in workers:
        worker.wait_ready()
    client = fleet.client()
    client.create_session("parent", max_turns=200)
    input_id = client.enqueue_turn("parent", "please delegate")

    row = client.wait_for_input("parent", input_id, timeout=120)

    assert row.state == "completed"
    store = client.store
    processes = store.processes.for_session("parent")
    assert len(processes) == 3
    assert all(p.status is ProcessStatus.COMPLETED for p in processes)
    # One turn: the answer of the input's turn gathers every subagent's answer.
    result = store.turns.result("parent", row.turn_id or "")
    assert result is not None and result["outcome"]["status"] == "finished"
    answer = result["outcome"]["text"]
    assert answer.startswith("gathered: ")
    assert all(f"RESULT-{i}" in answer for i in range(3))
    # The results joined that turn: each is a node of it, and no other turn ran.
    nodes = store.sessions.load("parent").graph.nodes
    wake_nodes = [n for n in nodes if n.startswith(f"{row.turn_id}.wake.")]
    assert len(wake_nodes) == 3
    assert store.maintenance.count_rows("lash_turn_commits", "parent") == 1
    assert store.turns.active("parent") is None
    wakes = store.queue.list_batches("parent", include_done=True)
    assert sorted(b.source_key for b in wakes) == sorted(
        f"process:{p.process_id}:event:2:wake" for p in processes
    )
    assert {b.state for b in wakes} == {"completed"}
    for process in processes:
        terminal = [
            e
            for e in store.processes.events_after(process.process_id)
            if e.event_type == "terminal"
        ]
        assert len(terminal) == 1
    children = [c.session_id for c in store.sessions.children("parent")]
    assert len(children) == 3
    wait_until(lambda: all_inputs_done(client, children), 60, "child turns done")
    client.close()
