"""Maintenance under load: tombstone + vacuum of many orphans while turns run."""

from __future__ import annotations

import threading
import time
from typing import Any

from lash_tasks.bench.fleet import BenchFleet
from lash_tasks.bench.history import seed_session
from lash_tasks.bench.load import closed_loop
from lash_tasks.bench.measure import percentile
from lash_tasks.client import Client
from lash_tasks.machine import Message, Node
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store
from lash_tasks.worker.maintenance import manual_slot, run_job
from lash_tasks.worker.resources import build_resources

ORPHANS_PER_SESSION = 100


def _orphaned_graph(session_index: int) -> tuple[list[Node], str]:
    """Root -> question -> answer on the active path, and a dead branch of orphans."""
    when = "2000-01-01T00:00:00+00:00"
    nodes = [
        Node("root", None, "message", Message("user", "q").to_json(), when),
        Node("answer", "root", "message", Message("assistant", "a").to_json(), when),
    ]
    parent = "root"
    for j in range(ORPHANS_PER_SESSION):
        node_id = f"old{session_index}.{j}"
        nodes.append(Node(node_id, parent, "message", Message("assistant", "x").to_json(), when))
        parent = node_id
    return nodes, "answer"


def maintenance_under_load(fleet: BenchFleet, sessions: int, window_s: float) -> dict[str, Any]:
    store = Store.from_url(fleet.database_url)
    settings = Settings.from_env(fleet.env(LASH_ORPHAN_RETENTION_S="0"))
    try:
        for index in range(sessions):
            nodes, leaf = _orphaned_graph(index)
            seed_session(store, f"orphans-{index}", nodes, leaf)
    finally:
        store.close()
    fleet.start_workers(1, 8)
    app = fleet.celery_app()
    client = Client(Store.from_url(fleet.database_url), settings, app)
    resources = build_resources(settings)
    try:
        talkers = [f"talker-{i}" for i in range(8)]
        for session_id in talkers:
            client.create_session(session_id)
        closed_loop(client, talkers, 2.0)  # warm-up
        idle = closed_loop(client, talkers, window_s)
        jobs: dict[str, float] = {}
        reports: dict[str, Any] = {}
        done = threading.Event()

        def run_jobs() -> None:
            try:
                for job in ("tombstone_orphans", "vacuum"):
                    started = time.perf_counter()
                    reports[job] = run_job(resources, app, job, manual_slot())
                    jobs[job] = time.perf_counter() - started
            finally:
                done.set()

        worker = threading.Thread(target=run_jobs, name="bench-maintenance")
        started = time.perf_counter()
        worker.start()
        busy = closed_loop(client, talkers, 3600, stop=done)
        worker.join()
        busy_s = time.perf_counter() - started
    finally:
        resources.close()
        client.close()
        fleet.stop_workers()
    idle_p99 = percentile(idle.latencies, 99) * 1000
    busy_p99 = percentile(busy.latencies, 99) * 1000
    return {
        "orphans": sessions * ORPHANS_PER_SESSION,
        "sessions": sessions,
        "tombstone_s": jobs.get("tombstone_orphans"),
        "vacuum_s": jobs.get("vacuum"),
        "tombstoned_nodes": reports.get("tombstone_orphans", {}).get("tombstoned_nodes"),
        "removed_nodes": reports.get("vacuum", {}).get("removed_nodes"),
        "turn_p99_idle_ms": idle_p99,
        "turn_p99_busy_ms": busy_p99,
        "turns_during_jobs": busy.completed,
        "jobs_wall_s": busy_s,
        "p99_ratio": busy_p99 / idle_p99,
    }
