"""`lash-tasks cancel SESSION --interrupt` ends a turn stuck in one long LLM call within
about a second, against real workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lash_tasks.client import Client
from tests.fleet.harness import REPO, Fleet, read_jsonl, transcript_pairs, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

CLI = str(Path(sys.executable).parent / "lash-tasks")


def llm_running(client: Client, sid: str) -> bool:
    return any(
        e["status"] == "in_progress" and ":llm_call:" in e["replay_key"]
        for e in client.store.journal.entries(sid)
    )


def test_cancel_interrupt_ends_a_long_llm_call_quickly(fleet: Fleet) -> None:
    """A turn whose LLM call would take 60 s: after `cancel --interrupt` it ends
    stopped(cancelled) within 1.5 s of the request, the cut call is journaled, and the next
    input runs."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = json.dumps([{"match": "think", "delay_ms": 60_000}])
    worker = fleet.start_worker("w", concurrency=2)
    worker.wait_ready()
    client = fleet.client()
    sid = "s1"
    client.create_session(sid)
    input_id = client.enqueue_turn(sid, "think for a minute")
    wait_until(lambda: llm_running(client, sid), 20, "the LLM call to start", poll=0.05)

    cli = subprocess.Popen(
        [CLI, "cancel", sid, "--interrupt", "--json"],
        env=fleet.env(),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        text=True,
    )
    # The interrupt counts from the moment the CLI's request is in the database.
    wait_until(
        lambda: (turn := client.store.turns.active(sid)) is None or turn.cancel_requested,
        30,
        "the interrupt request to be recorded",
        poll=0.01,
    )
    asked = time.monotonic()
    answer = client.wait_for_input(sid, input_id, timeout=10, poll=0.01)
    took = time.monotonic() - asked
    out, _ = cli.communicate(timeout=30)
    assert cli.returncode == 0
    assert json.loads(out)["interrupt_requested"] is True

    assert took < 1.5, f"the turn ended {took:.2f} s after the interrupt was requested"
    assert answer.outcome is not None
    assert (answer.outcome["status"], answer.outcome["reason"]) == ("stopped", "cancelled")
    assert transcript_pairs(client, sid) == [("user", "think for a minute")]
    view = client.session_view(sid)
    assert view.transcript[-1]["type"] == "turn_stopped"
    (cut,) = client.store.journal.entries(sid)
    assert (cut["status"], cut["error"]["code"]) == ("failed", "interrupted")
    assert client.store.turns.active(sid) is None
    wait_until(lambda: not fleet.live_leases(client.store, [sid]), 5, "the lease to be released")

    later = client.enqueue_turn(sid, "quick one")
    follow = client.wait_for_input(sid, later, timeout=30)
    assert follow.outcome is not None and follow.outcome["text"] == "echo: quick one"
    assert len(read_jsonl(fleet.call_log)) == 2  # the cut call and the quick one
    client.close()
