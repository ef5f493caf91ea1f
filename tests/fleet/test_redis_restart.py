"""Redis restarts under running turns: workers reconnect and live on, every turn completes once."""

from __future__ import annotations

import os
import time

import pytest

from tests.fleet.harness import (
    Fleet,
    all_inputs_done,
    calc_rules,
    calc_transcript,
    transcript_pairs,
    wait_until,
)
from tests.fleet.private_redis import PrivateRedis

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(150)]

SESSIONS = 5
# Free slots: a worker waiting on the queue (BRPOP) with steps in flight is the case that
# crashed celery 5.7.0 on reconnect.
CONCURRENCY = 4
LLM_DELAY_MS = 4000  # the first step of each turn spans the outage
IN_FLIGHT_S = 2.0
OUTAGE_S = float(os.environ.get("LASH_TEST_REDIS_OUTAGE_S", "4"))


def test_workers_survive_a_redis_restart_and_every_turn_completes(
    private_fleet: Fleet, redis_server: PrivateRedis
) -> None:
    """Restart Redis mid-turn: same worker pids alive, each input completed once, no lease held."""
    fleet = private_fleet
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules(delay_ms=LLM_DELAY_MS)
    # One step per delivery: each turn's second step needs a poke through the broker, which
    # is what the outage takes away (a delivery that goes on with its lease would not ask).
    fleet.extra_env["LASH_STEPS_PER_DELIVERY"] = "1"
    workers = [fleet.start_worker(f"w{i}", concurrency=CONCURRENCY) for i in range(2)]
    beat = fleet.start_beat()
    for proc in [*workers, beat]:
        proc.wait_ready()
    pids = [proc.pid for proc in [*workers, beat]]
    client = fleet.client()
    sessions = [f"restart-{i}" for i in range(SESSIONS)]
    inputs = {}
    for sid in sessions:
        client.create_session(sid)
        inputs[sid] = client.enqueue_turn(sid, f"calc for {sid}")

    # Given: turns are running (their first LLM call is in flight) when Redis goes away.
    wait_until(
        lambda: client.store.maintenance.count_rows("lash_active_turns") >= 3,
        30,
        "turns to start",
        poll=0.05,
    )
    time.sleep(IN_FLIGHT_S)
    redis_server.stop()
    nodes_at_stop = client.store.maintenance.count_rows("lash_graph_nodes")
    time.sleep(OUTAGE_S)  # steps finish and commit meanwhile; their pokes cannot be published
    committed_in_outage = client.store.maintenance.count_rows("lash_graph_nodes") - nodes_at_stop
    assert committed_in_outage > 0, "no step ended while Redis was down"
    assert not all_inputs_done(client, sessions), "every turn ended before Redis came back"
    redis_server.start()
    back_at = time.monotonic()

    # Then: the same processes reconnect and finish every turn.
    processes = [*workers, beat]
    wait_until(
        lambda: all_inputs_done(client, sessions) or not all(p.alive() for p in processes),
        60,
        "every input to complete",
    )
    recovery_s = time.monotonic() - back_at
    for proc, pid in zip(processes, pids, strict=True):
        assert proc.alive() and proc.pid == pid, f"{proc.name} died:\n{proc.log()[-3000:]}"
        assert "Unrecoverable error" not in proc.log(), proc.log()[-3000:]
    for proc in workers:  # a step that committed must not fail for want of a broker
        for failure in ("raised unexpected", "Exception raised outside body"):
            assert failure not in proc.log(), proc.log()[-3000:]
    assert all_inputs_done(client, sessions)
    print(f"\nredis restart: every turn completed {recovery_s:.1f} s after Redis was back")

    wait_until(lambda: not fleet.live_leases(client.store, sessions), 10, "leases to be released")
    for sid in sessions:
        rows = client.store.inputs.list_all(sid)
        assert [(r.input_id, r.state) for r in rows] == [(inputs[sid], "completed")]
        assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 1
        assert transcript_pairs(client, sid) == calc_transcript([f"calc for {sid}"])
        assert client.store.turns.active(sid) is None

    # And: the reconnected fleet still serves new work through the broker.
    client.create_session("after-restart")
    answer = client.wait_for_input(
        "after-restart", client.enqueue_turn("after-restart", "still here"), timeout=30
    )
    assert answer.state == "completed" and answer.text == "echo: still here"
    client.close()
