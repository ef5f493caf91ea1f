"""A worker paused past its lease (SIGSTOP) cannot commit when it wakes up."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fleet.harness import Fleet, read_jsonl, transcript_pairs, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

PAUSE_IN = {
    # Paused while the provider answers step 0: the taker-over repeats that (unrecorded) call.
    "llm_call": [
        {
            "match": "pause me",
            "delay_ms": 2500,
            "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}],
        }
    ],
    # Paused in a tool after the LLM call was journaled: that call is replayed, not repeated.
    "tool_call": [
        {"match": "pause me", "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 2500}}]}
    ],
}
TOOL_TEXT = {"llm_call": "42", "tool_call": "slept 2500 ms"}


@pytest.mark.parametrize("effect", sorted(PAUSE_IN))
def test_worker_paused_past_its_lease_cannot_commit(fleet: Fleet, effect: str) -> None:
    """SIGSTOP a worker mid-effect past its lease; another finishes; the woken one discards."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = json.dumps(PAUSE_IN[effect])
    stale = fleet.start_worker("stale", concurrency=1)
    beat = fleet.start_beat()
    stale.wait_ready()
    beat.wait_ready()
    client = fleet.client()
    sid = "paused"
    client.create_session(sid)
    input_id = client.enqueue_turn(sid, "pause me")

    def stale_is_in_effect() -> bool:
        owner, _, _ = client.store.leases.state(sid)
        running = [
            e
            for e in client.store.journal.entries(sid)
            if e["status"] == "in_progress" and f":{effect}:" in e["replay_key"]
        ]
        return owner == stale.owner_id and bool(running)

    wait_until(stale_is_in_effect, 20, f"the first worker to be in its {effect}", poll=0.05)
    stale.signal(signal.SIGSTOP)
    paused_at = time.monotonic()
    _, paused_fence, _ = client.store.leases.state(sid)

    fresh = fleet.start_worker("fresh", concurrency=2)
    fresh.wait_ready()
    answer = client.wait_for_input(sid, input_id, timeout=60)
    assert answer.state == "completed"
    assert answer.text == f"done: {TOOL_TEXT[effect]}"
    _, fence_after, _ = client.store.leases.state(sid)
    assert fence_after > paused_fence, "the turn finished without taking the lease over"
    assert time.monotonic() - paused_at > 3.0, "finished within the paused worker's lease ttl"
    head_before_wake = client.store.sessions.record(sid).head_revision

    stale.signal(signal.SIGCONT)
    wait_until(
        lambda: "discarded" in stale.log() or "raised unexpected" in stale.log(),
        30,
        "the woken worker to finish its stale step",
    )
    time.sleep(1.5)  # anything it would still write (a commit, a re-poke's step) lands now
    log = stale.log()
    assert f"step on {sid} discarded: lease_lost" in log, log[-3000:]
    assert "raised unexpected" not in log and "Traceback" not in log, log[-3000:]
    discarded = [
        r["result"]
        for r in fleet.task_results()
        if isinstance(r.get("result"), dict) and r["result"].get("status") == "lease_lost"
    ]
    assert [r["session_id"] for r in discarded] == [sid]

    # Nothing of the stale step reached the database.
    assert client.store.sessions.record(sid).head_revision == head_before_wake
    assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 1
    assert transcript_pairs(client, sid) == [
        ("user", "pause me"),
        ("assistant", ""),
        ("tool", TOOL_TEXT[effect]),
        ("assistant", answer.text),
    ]
    assert [(i.input_id, i.state) for i in client.store.inputs.list_all(sid)] == [
        (input_id, "completed")
    ]
    assert client.store.turns.active(sid) is None
    journal = client.store.journal.entries(sid)
    assert len(journal) == 3 and {e["status"] for e in journal} == {"completed"}
    wait_until(lambda: not fleet.live_leases(client.store, [sid]), 10, "the lease to be released")

    calls = read_jsonl(fleet.call_log)
    first, *rest = calls
    assert first["pid"] == stale.pid
    if effect == "llm_call":
        # The paused call never got recorded: the worker that took over made it again.
        assert [c["pid"] for c in rest] == [fresh.pid, fresh.pid]
        assert rest[0]["request_hash"] == first["request_hash"]
        assert rest[1]["request_hash"] != first["request_hash"]
    else:
        # The journaled LLM call was replayed; only step 1's call is new.
        assert [c["pid"] for c in rest] == [fresh.pid]
        assert rest[0]["request_hash"] != first["request_hash"]
    client.close()
