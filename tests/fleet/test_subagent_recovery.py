"""Subagents when things go wrong, on real workers: the worker running a child turn is
SIGKILLed (with the broker intact, then with the broker flushed), its completion is retried,
and its parent is deleted while it runs. Each time the child's turn completes once and the
parent hears of it at most once."""

from __future__ import annotations

import json

import pytest

from lash_tasks.client import Client
from lash_tasks.machine.processes import ProcessStatus, child_session_id
from lash_tasks.store.process_records import ProcessRecord
from lash_tasks.store.store import Store
from tests.fleet.harness import CeleryProcess, Fleet, wait_until
from tests.fleet.private_redis import PrivateRedis
from tests.store_conformance.support import session_row_counts

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(240)]

CHILD_THINKS_MS = 3000


def rules(child_delay_ms: int = CHILD_THINKS_MS, *, parent_waits: bool = True) -> str:
    """The parent spawns one subagent; the child thinks for a while and answers RESULT-0.
    A waiting parent sleeps in short steps until the result joins its turn, then answers
    with it; otherwise its turn ends at once."""
    script: list[dict[str, object]] = [
        {
            "match": "please delegate",
            "tool_calls": [{"name": "spawn_subagent", "arguments": {"task": "job-0"}}],
        },
        {"match": "job-0", "text": "RESULT-0", "delay_ms": child_delay_ms},
    ]
    if parent_waits:
        script += [
            {
                "match": "",
                "repeat_tool": True,
                "until": {"text": "RESULT-", "count": 1},
                "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 300}}],
            },
            {"match": "", "repeat_tool": True, "gather": "RESULT-"},
        ]
    return json.dumps(script)


def only_process(store: Store, parent: str) -> ProcessRecord:
    processes = store.processes.for_session(parent)
    assert len(processes) == 1, processes
    return processes[0]


def child_running_on(
    store: Store, workers: list[CeleryProcess], parent: str
) -> tuple[str, CeleryProcess]:
    """Wait until the child's turn step holds its session lease; the child and its worker."""
    found: list[tuple[str, CeleryProcess]] = []

    def leased() -> bool:
        processes = store.processes.for_session(parent)
        if not processes:
            return False
        child = child_session_id(processes[0].process_id)
        owner, _, _ = store.leases.state(child)
        found[:] = [(child, w) for w in workers if w.owner_id == owner]
        return bool(found) and store.turns.active(child) is not None

    wait_until(leased, 60, "the child's turn to run on a worker", poll=0.05)
    return found[0]


def assert_heard_once(client: Client, parent: str, turn_id: str | None) -> None:
    """The child's turn committed once, its process ended once, and the parent's turn took
    exactly one wake, with the child's answer in its final answer."""
    store = client.store
    process = only_process(store, parent)
    child = child_session_id(process.process_id)
    assert process.status is ProcessStatus.COMPLETED
    assert store.maintenance.count_rows("lash_turn_commits", child) == 1
    assert [i.state for i in store.inputs.list_all(child)] == ["completed"]
    terminal = [
        e for e in store.processes.events_after(process.process_id) if e.event_type == "terminal"
    ]
    assert len(terminal) == 1
    wakes = store.queue.list_batches(parent, include_done=True)
    assert [(b.source_key, b.state) for b in wakes] == [
        (f"process:{process.process_id}:event:{terminal[0].seq}:wake", "completed")
    ]
    nodes = store.sessions.load(parent).graph.nodes
    assert len([n for n in nodes if ".wake." in n]) == 1
    result = store.turns.result(parent, turn_id or "")
    assert result is not None and result["outcome"]["text"].startswith("gathered: ")
    assert "RESULT-0" in result["outcome"]["text"]


def test_sigkilled_subagent_worker_child_completes_once_parent_woken_once(
    fleet: Fleet,
) -> None:
    """SIGKILL the worker running the child's turn mid-call: another worker finishes the
    child turn once, the process completes once, and the running parent turn is woken once."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = rules()
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    beat = fleet.start_beat()
    for proc in [*workers, beat]:
        proc.wait_ready()
    client = fleet.client()
    client.create_session("parent", max_turns=400)
    input_id = client.enqueue_turn("parent", "please delegate")

    # When: the child's LLM call is in flight, its worker dies.
    _, victim = child_running_on(client.store, workers, "parent")
    victim.kill()
    workers.append(fleet.start_worker("w-replacement", concurrency=4))

    row = client.wait_for_input("parent", input_id, timeout=120)
    assert row.state == "completed"
    assert_heard_once(client, "parent", row.turn_id)
    client.close()


def test_flushed_broker_and_killed_subagent_worker_sweeper_recovers(
    private_fleet: Fleet, redis_server: PrivateRedis
) -> None:
    """The worker running the child's turn dies and the broker loses every message at once
    (no redelivery, no poke): the sweeper re-pokes the child and its process, the child turn
    completes once, and the parent is woken once."""
    fleet = private_fleet
    fleet.extra_env["LASH_SCRIPTED_RULES"] = rules()
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    beat = fleet.start_beat()
    for proc in [*workers, beat]:
        proc.wait_ready()
    client = fleet.client()
    client.create_session("parent", max_turns=400)
    input_id = client.enqueue_turn("parent", "please delegate")

    _, victim = child_running_on(client.store, workers, "parent")
    victim.kill()
    flushed_at = client.store.database.db_now_ms()
    fleet.redis().flushall()
    workers.append(fleet.start_worker("w-replacement", concurrency=4))

    row = client.wait_for_input("parent", input_id, timeout=150)
    assert row.state == "completed"
    assert_heard_once(client, "parent", row.turn_id)
    healing = [
        run["report"]
        for run in client.store.maintenance.runs("sweep")
        if run["started_at"] >= flushed_at and run["report"] is not None
    ]
    # The sweeper pokes the child session, or its runnable process (which pokes the child).
    assert any(r["poked_sessions"] + r["poked_processes"] > 0 for r in healing), healing
    assert redis_server.popen is not None  # the private server, never the shared one
    client.close()


def test_a_retried_completion_wakes_the_parent_once(fleet: Fleet) -> None:
    """Once a subagent's process completed, pokes delivered again and the completion itself
    retried with the same event key replay it: no second wake, no second turn."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = rules(child_delay_ms=0)
    worker = fleet.start_worker("w0", concurrency=4)
    worker.wait_ready()
    client = fleet.client()
    client.create_session("parent", max_turns=400)
    input_id = client.enqueue_turn("parent", "please delegate")
    row = client.wait_for_input("parent", input_id, timeout=90)
    store = client.store
    process = only_process(store, "parent")
    (terminal,) = [
        e for e in store.processes.events_after(process.process_id) if e.event_type == "terminal"
    ]

    # When: the process poke arrives again (a redelivery) and the completion is retried.
    publisher = fleet.publisher()
    runs = [
        publisher.send_task("lash.process.run", args=[process.process_id], queue="lash.processes")
        for _ in range(3)
    ]
    outcomes = [r.get(timeout=30) for r in runs]
    again = store.processes.complete(
        None,
        process.process_id,
        terminal.payload["status"],
        terminal.payload["result"],
        "terminal",
        summary=terminal.payload["summary"],
    )

    assert {o["status"] for o in outcomes} == {"done"}
    assert again.replayed and again.wake_session_id is None
    assert again.event.seq == terminal.seq
    assert len(store.queue.list_batches("parent", include_done=True)) == 1
    assert store.maintenance.count_rows("lash_turn_commits", "parent") == 1
    assert_heard_once(client, "parent", row.turn_id)
    client.close()


def test_deleting_a_parent_with_a_running_child(fleet: Fleet) -> None:
    """delete_session of a parent whose child turn still runs: the report names the
    orphaned process, no row of the parent remains (nor comes back when the child ends),
    the child and a bystander session are untouched, and the child's process completes
    with nobody to wake."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = rules(child_delay_ms=4000, parent_waits=False)
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    for proc in workers:
        proc.wait_ready()
    client = fleet.client()
    store = client.store
    client.create_session("bystander")
    bystander_input = client.enqueue_turn("bystander", "hello")
    assert client.wait_for_input("bystander", bystander_input, timeout=60).state == "completed"
    bystander_rows = session_row_counts(store, "bystander")
    client.create_session("parent")
    parent_input = client.enqueue_turn("parent", "please delegate")
    assert client.wait_for_input("parent", parent_input, timeout=60).state == "completed"
    child, _ = child_running_on(store, workers, "parent")
    process = only_process(store, "parent")

    report = client.delete_session("parent")

    assert report.deleted
    assert report.orphaned_process_ids == [process.process_id]
    assert set(session_row_counts(store, "parent").values()) == {0}
    assert store.sessions.exists(child)
    wait_until(
        lambda: store.processes.require(process.process_id).status is ProcessStatus.COMPLETED,
        60,
        "the orphaned subagent to finish",
    )
    assert [i.state for i in store.inputs.list_all(child)] == ["completed"]
    finished = store.processes.require(process.process_id)
    assert (finished.session_id, finished.wake_session_id) == (None, None)
    assert set(session_row_counts(store, "parent").values()) == {0}
    assert not store.sessions.exists("parent")
    assert session_row_counts(store, "bystander") == bystander_rows
    client.close()
