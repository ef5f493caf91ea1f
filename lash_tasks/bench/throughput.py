"""Throughput: latency-bound efficiency of one worker process, and scaling across processes."""

from __future__ import annotations

import json
from typing import Any

from lash_tasks.bench.fleet import BenchFleet
from lash_tasks.bench.load import closed_loop
from lash_tasks.client import Client
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store

WARMUP_S = 3.0


def _client(fleet: BenchFleet) -> Client:
    return Client(
        Store.from_url(fleet.database_url), Settings.from_env(fleet.env()), fleet.celery_app()
    )


def latency_bound(fleet: BenchFleet, concurrency: int, window_s: float) -> dict[str, Any]:
    """One worker process, threads pool of `concurrency`, an LLM that takes 500 ms.

    Twice as many sessions as threads keep the pool saturated; the ideal is `concurrency /
    0.5 s` steps per second, and efficiency is what was achieved over that.
    """
    llm_s = 0.5
    rules = json.dumps([{"match": "", "delay_ms": int(llm_s * 1000)}])
    fleet.start_workers(1, concurrency, LASH_SCRIPTED_RULES=rules)
    client = _client(fleet)
    try:
        sessions = [f"lat{concurrency}-{i}" for i in range(2 * concurrency)]
        for session_id in sessions:
            client.create_session(session_id)
        result = closed_loop(client, sessions, WARMUP_S + window_s)
    finally:
        client.close()
        fleet.stop_workers()
    achieved = result.rate(WARMUP_S, WARMUP_S + window_s)
    ideal = concurrency / llm_s
    return {
        "concurrency": concurrency,
        "steps_per_s": achieved,
        "ideal_steps_per_s": ideal,
        "efficiency": achieved / ideal,
    }


def scaling(fleet: BenchFleet, processes: int, window_s: float) -> dict[str, Any]:
    """`processes` worker processes (threads pool of 8), an instant LLM, 16 sessions each."""
    fleet.start_workers(processes, 8)
    client = _client(fleet)
    try:
        sessions = [f"scale{processes}-{i}" for i in range(16 * processes)]
        for session_id in sessions:
            client.create_session(session_id)
        result = closed_loop(client, sessions, WARMUP_S + window_s)
    finally:
        client.close()
        fleet.stop_workers()
    return {"processes": processes, "steps_per_s": result.rate(WARMUP_S, WARMUP_S + window_s)}
