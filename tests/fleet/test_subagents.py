"""Subagents on real workers: a parent turn spawns three; each child runs on the fleet,
completes its process once, and wakes the parent, whose transcript then holds every answer."""

from __future__ import annotations

import json

import pytest

from lash_tasks.machine.processes import ProcessStatus
from tests.fleet.harness import Fleet, all_inputs_done, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(240)]

SPAWN_THREE = json.dumps(
    [
        {
            "match": "delegate",
            "tool_calls": [
                {"name": "spawn_subagent", "arguments": {"task": f"subtask {i}"}} for i in range(3)
            ],
        }
    ]
)


def test_three_subagents_complete_once_and_wake_the_parent(fleet: Fleet) -> None:
    """3 subagents spawned in one step run on 2 workers; each process completes once, each
    wake reaches the parent once, and the parent's transcript holds all three answers."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = SPAWN_THREE
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    for worker in workers:
        worker.wait_ready()
    client = fleet.client()
    client.create_session("parent")
    input_id = client.enqueue_turn("parent", "please delegate")
    assert client.wait_for_input("parent", input_id, timeout=90).state == "completed"
    store = client.store

    def finished() -> bool:
        processes = store.processes.for_session("parent")
        return len(processes) == 3 and all(p.status is ProcessStatus.COMPLETED for p in processes)

    wait_until(finished, 90, "three subagent processes completed")
    children = [c.session_id for c in store.sessions.children("parent")]
    assert len(children) == 3
    wait_until(lambda: all_inputs_done(client, children), 60, "child turns done")

    def woken() -> bool:
        texts = " ".join(m.text for m in store.sessions.load("parent").graph.active_messages())
        return all(f"echo: subtask {i}" in texts for i in range(3)) and not (
            store.turns.active("parent") or store.queue.list_batches("parent")
        )

    wait_until(woken, 90, "parent saw every subagent answer")
    wakes = store.queue.list_batches("parent", include_done=True)
    assert sorted(b.source_key for b in wakes) == sorted(
        f"process:{p.process_id}:event:2:wake" for p in store.processes.for_session("parent")
    )
    for process in store.processes.for_session("parent"):
        terminal = [
            e
            for e in store.processes.events_after(process.process_id)
            if e.event_type == "terminal"
        ]
        assert len(terminal) == 1
    client.close()
