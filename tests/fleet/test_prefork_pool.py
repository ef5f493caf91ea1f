"""The prefork pool: a child killed mid-step is replaced and its message redelivered."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fleet.harness import (
    Fleet,
    calc_rules,
    calc_transcript,
    read_jsonl,
    transcript_pairs,
    wait_until,
)

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(180)]


def child_pids(parent: int) -> list[int]:
    """Pool children of a worker's main process, from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def test_prefork_child_killed_mid_step_loses_nothing(fleet: Fleet) -> None:
    """SIGKILL a prefork child during its LLM call: the turn still ends exactly once."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules(delay_ms=1500)
    worker = fleet.start_worker("pf", pool="prefork", concurrency=2)
    worker.wait_ready()
    client = fleet.client()
    sessions = [f"pf-{i}" for i in range(4)]
    for sid in sessions:
        client.create_session(sid)

    def converse(sid: str) -> list[str]:
        answers = []
        for turn in range(2):
            input_id = client.enqueue_turn(sid, f"calc {turn} in {sid}")
            answers.append(client.wait_for_input(sid, input_id, timeout=120).text)
        return answers

    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        futures = [pool.submit(converse, sid) for sid in sessions]
        # Kill a child while it is inside a (slow) LLM call: its journal row is in progress.
        wait_until(
            lambda: any(
                e["status"] == "in_progress"
                for sid in sessions
                for e in client.store.journal.entries(sid)
            ),
            30,
            "a step to be inside its LLM call",
        )
        victims = child_pids(worker.pid)
        assert victims, "the prefork worker has pool children"
        os.kill(victims[0], signal.SIGKILL)
        results = [f.result(timeout=150) for f in futures]

    assert results == [["done: 42", "done: 42"]] * len(sessions)
    assert worker.alive(), "the main process survives a lost child"
    assert any(pid not in victims for pid in child_pids(worker.pid)), "a child was replaced"
    for sid in sessions:
        assert transcript_pairs(client, sid) == calc_transcript(
            [f"calc {t} in {sid}" for t in range(2)]
        )
        assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 2
        assert client.store.turns.active(sid) is None
    calls = read_jsonl(fleet.call_log)
    # Only the killed child's in-flight call may have been repeated.
    assert len(calls) - len({c["request_hash"] for c in calls}) <= 1
    assert "SIGKILL" in worker.log(), "celery saw the child die"
    client.close()
