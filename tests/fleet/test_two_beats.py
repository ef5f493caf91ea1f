"""Two beats running by mistake do no harm: each maintenance (job, slot) runs once."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.fleet.harness import Fleet, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

RUN_FOR_S = 12.0


def _sweep_reports(fleet: Fleet) -> list[dict[str, Any]]:
    return [
        r["result"]
        for r in fleet.task_results()
        if r.get("status") == "SUCCESS"
        and isinstance(r.get("result"), dict)
        and r["result"].get("job") == "sweep"
    ]


def test_two_beats_run_each_sweep_slot_once(fleet: Fleet) -> None:
    """Two beats (two schedule files) fire every sweep twice; each slot does its work once."""
    workers = [fleet.start_worker(f"w{i}", concurrency=2) for i in range(2)]
    beats = [fleet.start_beat("beat-a"), fleet.start_beat("beat-b")]
    for proc in [*workers, *beats]:
        proc.wait_ready()
    time.sleep(RUN_FOR_S)
    for beat in beats:
        beat.stop()
    fired = [len(re.findall(r"Sending due task lash-sweep", beat.log())) for beat in beats]
    assert min(fired) >= 3, f"each beat should have fired the sweep several times: {fired}"
    wait_until(
        lambda: (
            fleet.queue_length("lash.maintenance") == 0 and len(_sweep_reports(fleet)) == sum(fired)
        ),
        20,
        "every fired sweep to report",
    )

    reports = _sweep_reports(fleet)
    did_work = [r for r in reports if "skipped" not in r]
    skipped = [r for r in reports if "skipped" in r]
    worked_slots = [r["slot"] for r in did_work]
    assert len(worked_slots) == len(set(worked_slots)), "a sweep slot did its work twice"
    assert skipped, "two beats never collided on a slot: the test proved nothing"
    assert {r["slot"] for r in skipped} <= set(worked_slots)
    client = fleet.client()
    runs = client.store.maintenance.runs("sweep")
    client.close()
    assert sorted(run["slot"] for run in runs) == sorted(worked_slots)
    assert all(run["finished_at"] is not None for run in runs)
    # The skipped duplicates were reported in the workers' logs too.
    logged = sum(len(re.findall(r"maintenance sweep: .*'skipped'", w.log())) for w in workers)
    assert logged == len(skipped)


def test_same_explicit_slot_runs_once(fleet: Fleet) -> None:
    """`lash.maintenance.vacuum` sent twice with one explicit slot: the second is skipped."""
    worker = fleet.start_worker("w0", concurrency=2)
    worker.wait_ready()
    app = fleet.publisher()
    slot = "test-vacuum-slot-1"
    first = app.send_task("lash.maintenance.vacuum", kwargs={"slot": slot}).get(timeout=30)
    second = app.send_task("lash.maintenance.vacuum", kwargs={"slot": slot}).get(timeout=30)
    assert first["job"] == "vacuum" and first["slot"] == slot and "skipped" not in first
    assert second == {"job": "vacuum", "slot": slot, "skipped": "slot already ran"}
    client = fleet.client()
    runs = client.store.maintenance.runs("vacuum")
    client.close()
    assert [(r["slot"], r["report"]) for r in runs] == [(slot, first)]
    app.close()
