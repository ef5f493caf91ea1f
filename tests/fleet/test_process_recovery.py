"""Background tool processes on real workers: a model's call starts one and its result joins
the running turn; one whose worker is SIGKILLed after it started recovers by its declared
disposition (owner_bound → abandoned with evidence, never run again; rerunnable → run once
more, to completion), and its session is woken once either way."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lash_tasks.machine.processes import Disposition, ProcessRegistration, ProcessStatus
from tests.fleet.harness import TESTS_ON_PATH, Fleet, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(180)]

RUN_MS = 5000
CALL_MS = 1234
# The model starts the background tool, sleeps in short steps until its result has joined
# the turn, then answers with it.
CRUNCH_AND_WAIT = json.dumps(
    [
        {
            "match": "please crunch",
            "tool_calls": [{"name": "counted_sleep", "arguments": {"ms": CALL_MS}}],
        },
        {
            "match": "",
            "repeat_tool": True,
            "until": {"text": f"slept {CALL_MS} ms", "count": 1},
            "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 300}}],
        },
        {"match": "", "repeat_tool": True, "gather": f"slept {CALL_MS} ms"},
    ]
)


def runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_background_tool_call_returns_at_once_and_its_result_joins_the_turn(
    fleet: Fleet,
) -> None:
    """The model's call answers with a process handle while the tool runs on a worker; the
    result reaches the same running turn, whose final answer uses it; the tool ran once."""
    run_log = fleet.home / "runs.log"
    fleet.extra_env.update(
        LASH_SCRIPTED_RULES=CRUNCH_AND_WAIT,
        LASH_TOOLS="tests.tools.lash_test_tool_runs:CountedTools",
        LASH_TEST_RUN_LOG=str(run_log),
        **TESTS_ON_PATH,
    )
    workers = [fleet.start_worker(f"w{i}", concurrency=2) for i in range(2)]
    for proc in workers:
        proc.wait_ready()
    client = fleet.client()
    client.create_session("cruncher", max_turns=400)
    input_id = client.enqueue_turn("cruncher", "please crunch")

    row = client.wait_for_input("cruncher", input_id, timeout=90)

    store = client.store
    (process,) = store.processes.for_session("cruncher")
    assert (process.kind, process.status) == ("tool", ProcessStatus.COMPLETED)
    assert len(runs(run_log)) == 1
    messages = store.sessions.load("cruncher").graph.active_messages()
    handle = next(m for m in messages if m.role == "tool")
    assert handle.text.startswith(
        f"counted_sleep started in the background (process {process.process_id})"
    )
    result = store.turns.result("cruncher", row.turn_id or "")
    assert result is not None
    assert result["outcome"]["text"].startswith("gathered: ")
    assert f"slept {CALL_MS} ms" in result["outcome"]["text"]
    assert store.maintenance.count_rows("lash_turn_commits", "cruncher") == 1
    client.close()


@pytest.mark.parametrize(
    ("disposition", "ends", "started"),
    [
        (Disposition.OWNER_BOUND, ProcessStatus.ABANDONED, 1),
        (Disposition.RERUNNABLE, ProcessStatus.COMPLETED, 2),
    ],
)
def test_a_started_process_whose_worker_died_recovers_by_its_disposition(
    fleet: Fleet, disposition: Disposition, ends: ProcessStatus, started: int
) -> None:
    """Kill the worker running a background tool: owner_bound ends abandoned with evidence
    naming the dead worker and is not run again; rerunnable is run once more and completes;
    one terminal event and one wake either way."""
    run_log = fleet.home / "runs.log"
    fleet.extra_env.update(
        LASH_TOOLS="tests.tools.lash_test_tool_runs:CountedTools",
        LASH_TEST_RUN_LOG=str(run_log),
        **TESTS_ON_PATH,
    )
    workers = [fleet.start_worker(f"w{i}", concurrency=2) for i in range(2)]
    beat = fleet.start_beat()
    for proc in [*workers, beat]:
        proc.wait_ready()
    client = fleet.client()
    store = client.store
    client.create_session("owner")
    process_id = f"bg-{disposition.value}"
    store.processes.register(
        ProcessRegistration(
            process_id,
            "tool",
            disposition,
            "owner",
            {"tool": "counted_sleep", "arguments": json.dumps({"ms": RUN_MS}), "call_id": "c1"},
            wake_session_id="owner",
        )
    )
    fleet.publisher().send_task("lash.process.run", args=[process_id], queue="lash.processes")

    # When: the tool is running (it noted its start), its worker dies.
    wait_until(lambda: len(runs(run_log)) == 1, 30, "the tool to start", poll=0.05)
    holder = store.processes.require(process_id).lease_owner
    (victim,) = [w for w in workers if w.owner_id == holder]
    victim.kill()
    workers.append(fleet.start_worker("w-replacement", concurrency=2))

    wait_until(
        lambda: store.processes.require(process_id).status is ends, 60, f"the process {ends}"
    )
    time.sleep(3)  # a sweep or two more: nothing runs it again
    assert len(runs(run_log)) == started
    events = store.processes.events_after(process_id)
    (terminal,) = [e for e in events if e.event_type == "terminal"]
    assert [e.event_type for e in events].count("first_started") == (
        1 if disposition is Disposition.OWNER_BOUND else 0
    )
    if disposition is Disposition.OWNER_BOUND:
        evidence = terminal.payload["result"]["evidence"]
        assert evidence["dead_owner_id"] == victim.owner_id
        assert evidence["first_started_at"] is not None
    else:
        assert terminal.payload["result"]["text"] == f"slept {RUN_MS} ms"
    wait_until(lambda: not store.queue.list_batches("owner"), 30, "the wake to be answered")
    (wake,) = store.queue.list_batches("owner", include_done=True)
    assert wake.source_key == f"process:{process_id}:event:{terminal.seq}:wake"
    assert store.maintenance.count_rows("lash_turn_commits", "owner") == 1
    client.close()
