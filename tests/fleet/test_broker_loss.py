"""The broker loses every message (FLUSHDB): the database is the truth, the sweeper heals."""

from __future__ import annotations

import pytest

from tests.fleet.conftest import REDIS_DB
from tests.fleet.harness import (
    Fleet,
    all_inputs_done,
    calc_rules,
    calc_transcript,
    transcript_pairs,
    wait_until,
)

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

SESSIONS = 16


def test_flushed_broker_loses_no_input(fleet: Fleet) -> None:
    """FLUSHDB of the fleet's Redis database mid-work: the sweeper re-pokes, all inputs finish."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules(delay_ms=400)
    workers = [fleet.start_worker(f"w{i}", concurrency=2) for i in range(2)]
    beat = fleet.start_beat()
    for proc in [*workers, beat]:
        proc.wait_ready()
    client = fleet.client()
    sessions = [f"flush-{i}" for i in range(SESSIONS)]
    inputs = {}
    for sid in sessions:
        client.create_session(sid)
        inputs[sid] = client.enqueue_turn(sid, f"calc for {sid}")

    broker = fleet.redis()
    assert broker.connection_pool.connection_kwargs["db"] == REDIS_DB  # never another database
    # Work is in flight (a step ran) and pokes are still waiting in the broker.
    wait_until(
        lambda: (
            client.store.maintenance.count_rows("lash_active_turns") > 0
            or client.store.maintenance.count_rows("lash_turn_commits") > 0
        ),
        30,
        "the first step to commit",
        poll=0.05,
    )
    waiting = fleet.queue_length("lash.turns")
    flushed_at = client.store.database.db_now_ms()
    broker.flushdb()
    assert waiting > 0, "nothing was waiting in the broker: the flush lost nothing"
    assert not all_inputs_done(client, sessions)

    wait_until(lambda: all_inputs_done(client, sessions), 60, "every input to complete")

    healing = [
        run
        for run in client.store.maintenance.runs("sweep")
        if run["started_at"] >= flushed_at and run["report"] is not None
    ]
    assert healing, "no sweep ran after the flush"
    assert any(run["report"]["poked_sessions"] > 0 for run in healing), healing
    assert all(run["report"]["job"] == "sweep" for run in healing)

    wait_until(lambda: not fleet.live_leases(client.store, sessions), 10, "leases to be released")
    for sid in sessions:
        rows = client.store.inputs.list_all(sid)
        assert [(r.input_id, r.state) for r in rows] == [(inputs[sid], "completed")]
        assert client.store.maintenance.count_rows("lash_turn_commits", sid) == 1
        assert transcript_pairs(client, sid) == calc_transcript([f"calc for {sid}"])
        assert client.store.turns.active(sid) is None
    client.close()
