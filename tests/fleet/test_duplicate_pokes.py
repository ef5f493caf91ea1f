"""Duplicate pokes are harmless: 50 pokes for one pending input run exactly one turn."""

from __future__ import annotations

from collections import Counter

import pytest

from lash_tasks.ingress import EnqueueTurnPayload, operations
from tests.fleet.harness import (
    Fleet,
    calc_rules,
    calc_transcript,
    read_jsonl,
    transcript_pairs,
    wait_until,
)

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

POKES = 50


def test_fifty_pokes_for_one_input_run_one_turn(fleet: Fleet) -> None:
    """50 pokes for one pending input collapse into one message; 2 workers run one turn."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules(delay_ms=300)
    client = fleet.client()
    sid = "dup-pokes"
    client.create_session(sid)
    # The input is written without a poke of its own: the 50 pokes below are all there is.
    row = operations.enqueue_turn(
        client.store, EnqueueTurnPayload(session_id=sid, text="calc once")
    )
    for _ in range(POKES):
        client.poke(sid)
    # Coalesced at the source: one message waits, however many pokes were sent.
    assert fleet.queue_length("lash.turns") == 1

    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    for worker in workers:
        worker.wait_ready()
    answer = client.wait_for_input(sid, row.input_id, timeout=60)
    assert answer.state == "completed"
    assert answer.text == "done: 42"

    def step_results() -> list[dict[str, object]]:
        return [
            r["result"]
            for r in fleet.task_results()
            if r.get("status") == "SUCCESS"
            and isinstance(r.get("result"), dict)
            and r["result"].get("session_id") == sid
        ]

    wait_until(
        lambda: fleet.queue_length("lash.turns") == 0 and len(step_results()) >= 1,
        30,
        "the turn's step poke to be consumed",
    )
    wait_until(lambda: not fleet.live_leases(client.store, [sid]), 10, "the lease to be released")

    # The one poke ran the whole turn (both steps, going on with its lease); nothing else ran.
    results = step_results()
    statuses = Counter(str(r["status"]) for r in results)
    assert statuses == Counter({"finished": 1}), statuses
    assert [r["steps"] for r in results] == [2]

    # Duplicates that reach a worker anyway (no coalescing) see `busy` or `idle`.
    for _ in range(20):
        fleet.publisher().send_task("lash.session.step", args=(sid,), queue="lash.turns")
    wait_until(
        lambda: fleet.queue_length("lash.turns") == 0 and len(step_results()) >= 21,
        30,
        "the uncoalesced duplicates to be consumed",
    )
    statuses = Counter(str(r["status"]) for r in step_results())
    assert statuses["finished"] == 1 and "progressed" not in statuses, statuses
    assert set(statuses) <= {"progressed", "finished", "busy", "idle"}, statuses

    assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 1
    assert transcript_pairs(client, sid) == calc_transcript(["calc once"])
    inputs = client.store.inputs.list_all(sid)
    assert [(i.input_id, i.state) for i in inputs] == [(row.input_id, "completed")]
    assert client.store.turns.active(sid) is None
    calls = read_jsonl(fleet.call_log)
    # Two steps (tool call, then the answer): the provider was asked exactly twice.
    assert len(calls) == 2, calls
    assert len({c["request_hash"] for c in calls}) == 2
    client.close()
