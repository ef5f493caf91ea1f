"""Two real workers serve many sessions; every input gets exactly one answer, in order."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fleet.harness import Fleet, transcript_pairs

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(240)]

CALC_RULES = json.dumps(
    [{"match": "calc", "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]}]
)


def test_two_workers_answer_every_input_once_in_order(fleet: Fleet) -> None:
    """20 sessions x 3 tool-using turns on 2 workers: one final answer per input, in order."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = CALC_RULES
    workers = [fleet.start_worker(f"w{i}", concurrency=4) for i in range(2)]
    for worker in workers:
        worker.wait_ready()
    client = fleet.client()
    sessions = [f"happy-{i}" for i in range(20)]
    for sid in sessions:
        client.create_session(sid)

    def converse(sid: str) -> list[str]:
        answers = []
        for turn in range(3):
            input_id = client.enqueue_turn(sid, f"calc turn {turn} of {sid}")
            answer = client.wait_for_input(sid, input_id, timeout=90)
            assert answer.state == "completed"
            assert answer.outcome is not None
            answers.append(answer.text)
        return answers

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(converse, sessions))

    assert results == [["done: 42"] * 3] * len(sessions)
    for sid in sessions:
        expected: list[tuple[str, str]] = []
        for turn in range(3):
            expected += [
                ("user", f"calc turn {turn} of {sid}"),
                ("assistant", ""),
                ("tool", "42"),
                ("assistant", "done: 42"),
            ]
        assert transcript_pairs(client, sid) == expected
        assert client.store.turns.active(sid) is None
        assert client.store.leases.state(sid)[0] is None
        stamps = client.store.maintenance.count_rows("lash_turn_commits", sid)
        assert stamps == 3
    client.close()
