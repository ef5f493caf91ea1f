"""Chaos: SIGKILL workers mid-step while 30 sessions talk; nothing is lost or done twice."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fleet.harness import (
    CeleryProcess,
    Fleet,
    calc_rules,
    calc_transcript,
    read_jsonl,
    transcript_pairs,
    wait_until,
)

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(200)]

SESSIONS = 30
TURNS = 5
WORKERS = 3
CONCURRENCY = 4
KILL_EVERY_S = 2.0
DEADLINE_S = 150.0


def _text(sid: str, turn: int) -> str:
    return f"calc turn {turn} of {sid}"


def test_sigkilled_workers_lose_nothing_and_repeat_no_journaled_call(fleet: Fleet) -> None:
    """30 sessions x 5 turns while a worker is SIGKILLed every 2 s: each input answered once."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules(delay_ms=150)
    workers = [fleet.start_worker(f"w{i}", concurrency=CONCURRENCY) for i in range(WORKERS)]
    beat = fleet.start_beat()
    for proc in [*workers, beat]:
        proc.wait_ready()
    client = fleet.client()
    sessions = [f"kill-{i}" for i in range(SESSIONS)]
    for sid in sessions:
        client.create_session(sid)

    deadline = time.monotonic() + DEADLINE_S
    stop = threading.Event()
    killed: list[CeleryProcess] = []
    chaos_errors: list[BaseException] = []

    def chaos() -> None:
        rng = random.Random(20240611)
        started = WORKERS
        try:
            while not stop.wait(KILL_EVERY_S + rng.uniform(-0.5, 0.5)):
                index = rng.randrange(len(workers))
                victim = workers[index]
                victim.kill()
                killed.append(victim)
                workers[index] = fleet.start_worker(f"w{started}", concurrency=CONCURRENCY)
                started += 1
        except BaseException as exc:  # surfaced by the main thread
            chaos_errors.append(exc)

    def converse(sid: str) -> list[str]:
        answers = []
        for turn in range(TURNS):
            input_id = client.enqueue_turn(sid, _text(sid, turn))
            answer = client.wait_for_input(
                sid, input_id, timeout=max(1.0, deadline - time.monotonic())
            )
            assert answer.state == "completed"
            answers.append(answer.text)
        return answers

    chaos_thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    chaos_thread.start()
    began = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
            results = list(pool.map(converse, sessions))
    finally:
        stop.set()
        chaos_thread.join(timeout=30)
    elapsed = time.monotonic() - began
    assert not chaos_errors, chaos_errors
    kills = len(killed)
    assert kills >= 3, f"only {kills} kills in {elapsed:.1f} s: the chaos did not bite"
    assert results == [["done: 42"] * TURNS] * SESSIONS

    # What the database holds afterwards.
    wait_until(
        lambda: not fleet.live_leases(client.store, sessions), 15, "every lease to be released"
    )
    for sid in sessions:
        inputs = client.store.inputs.list_all(sid)
        assert [i.input["text"] for i in inputs] == [_text(sid, t) for t in range(TURNS)]
        assert all(i.state == "completed" for i in inputs), [(i.input_id, i.state) for i in inputs]
        turn_ids = [i.turn_id for i in inputs]
        assert None not in turn_ids and len(set(turn_ids)) == TURNS
        for input_row in inputs:
            stamp = client.store.turns.result(sid, str(input_row.turn_id))
            assert stamp is not None and stamp["input_ids"] == [input_row.input_id]
        assert client.store.maintenance.count_rows("lash_turn_commits", sid) == TURNS
        assert transcript_pairs(client, sid) == calc_transcript(_text(sid, t) for t in range(TURNS))
        assert client.store.turns.active(sid) is None
        journal = client.store.journal.entries(sid)
        # Per turn: step 0 = LLM call + calculator call, step 1 = LLM call.
        assert len(journal) == TURNS * 3
        assert {e["status"] for e in journal} == {"completed"}

    calls = read_jsonl(fleet.call_log)
    per_hash = Counter(c["request_hash"] for c in calls)
    # Every distinct request is one step's LLM call: nothing else ever asked the model.
    assert len(per_hash) == SESSIONS * TURNS * 2
    repeats = len(calls) - len(per_hash)
    assert repeats <= kills * CONCURRENCY, (repeats, kills)
    # Only a call whose process was killed before it journaled the outcome may be repeated.
    killed_pids = {proc.pid for proc in killed}
    for digest in (h for h, n in per_hash.items() if n > 1):
        survivors = [c for c in calls if c["request_hash"] == digest]
        survivors = [c for c in survivors if c["pid"] not in killed_pids]
        assert len(survivors) <= 1, (digest, survivors)
    print(
        f"\nkill test: {elapsed:.1f} s, {kills} kills, {len(calls)} LLM calls, "
        f"{repeats} repeated (interrupted by a kill)"
    )
    client.close()
