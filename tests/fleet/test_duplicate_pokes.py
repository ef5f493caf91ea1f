"""Duplicate pokes are harmless: 50 pokes for one pending input run exactly one turn."""

from __future__ import annotations

from collections import Counter

import pytest

from lash_tasks import service
from lash_tasks.ingress import EnqueueTurnPayload
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
    """50 pokes, one pending input, 2 workers x 4 threads: one turn, one LLM call per step."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules(delay_ms=300)
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    for worker in workers:
        worker.wait_ready()
    client = fleet.client()
    sid = "dup-pokes"
    client.create_session(sid)
    # The input is written without a poke of its own: the 50 pokes below are all there is.
    row = service.enqueue_turn(client.store, EnqueueTurnPayload(session_id=sid, text="calc once"))
    for _ in range(POKES):
        client.poke(sid)

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

    # Every poke (and every coalesced re-poke of a busy step) has run to its end.
    wait_until(
        lambda: fleet.queue_length("lash.turns") == 0 and len(step_results()) >= POKES,
        30,
        "all pokes to be consumed",
    )
    wait_until(lambda: not fleet.live_leases(client.store, [sid]), 10, "the lease to be released")

    statuses = Counter(str(r["status"]) for r in step_results())
    assert statuses["progressed"] == 1, statuses
    assert statuses["finished"] == 1, statuses
    # A duplicate sees `busy` (another step holds the lease) or `idle` (nothing left).
    assert set(statuses) <= {"progressed", "finished", "busy", "idle"}, statuses

    assert client.store.count_rows("lash_turn_commits", sid) == 1
    assert transcript_pairs(client, sid) == calc_transcript(["calc once"])
    inputs = client.store.list_inputs(sid)
    assert [(i.input_id, i.state) for i in inputs] == [(row.input_id, "completed")]
    assert client.store.active_turn(sid) is None
    calls = read_jsonl(fleet.call_log)
    # Two steps (tool call, then the answer): the provider was asked exactly twice.
    assert len(calls) == 2, calls
    assert len({c["request_hash"] for c in calls}) == 2
    client.close()
