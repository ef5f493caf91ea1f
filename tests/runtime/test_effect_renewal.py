"""Effect leases are renewed by the keeper of the step that runs the effect, and by no
other: a hung call of one session is not kept alive by another session's step."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from lash_tasks.machine import ToolManifest
from lash_tasks.runtime.lash_core import LeaseTimings
from lash_tasks.runtime.step_driver import StepResult, run_step
from lash_tasks.tools.builtins import BuiltinTools
from lash_tasks.tools.contract import ToolContext, ToolResult
from lash_tasks.tools.registry import ToolRegistry
from tests.runtime.conftest import Harness

# Leases long enough that a loaded machine does not lose them by accident.
LEASE = LeaseTimings(ttl_ms=3000, renew_ms=1000)
STEP_LIMIT_MS = 2000
B_STEP_S = 9


class HangOnce:
    """Its first call blocks until released (a hung tool); later calls answer at once."""

    name = "hang-once"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def manifests(self) -> list[ToolManifest]:
        return [ToolManifest(name="hang", description="hangs the first time")]

    def execute(self, tool_name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.release.wait(30)
        return ToolResult("unhung")


def test_a_hung_step_is_not_kept_alive_by_another_sessions_step(harness: Harness) -> None:
    """One worker runs session A (its tool hangs) and then a long step of session B. Past A's
    step limit nothing renews A's effect lease, so another worker takes A over and finishes
    it within the limit plus a lease ttl, while B's step is still running."""
    hang = HangOnce()
    rules = json.dumps(
        [
            {"match": "hang", "tool_calls": [{"name": "hang", "arguments": {}}]},
            {"match": "long", "delay_ms": B_STEP_S * 1000},
        ]
    )
    worker, llm = harness.core(
        rules, lease=LEASE, tools=lambda: ToolRegistry([BuiltinTools(), hang])
    )
    other, _ = harness.core(provider=llm, owner="worker-b", lease=LEASE, tools=worker.tools_factory)
    store = harness.store
    harness.session("a")
    harness.session("b")
    harness.enqueue("a", "hang please")
    harness.enqueue("b", "long answer")
    results: dict[str, StepResult] = {}

    def step(sid: str) -> None:
        results[sid] = run_step(worker, sid)

    # Given A's step hung in its tool, under a step limit ...
    worker.step_time_limit_ms = STEP_LIMIT_MS
    started = time.monotonic()
    hung = threading.Thread(target=step, args=("a",))
    hung.start()
    while hang.calls == 0:
        hung.join(timeout=0.01)
    # ... and B's long step started on the same worker with no limit, so that its keeper
    # outlives A's limit.
    worker.step_time_limit_ms = None
    busy = threading.Thread(target=step, args=("b",))
    busy.start()

    # When another worker keeps poking A, as the sweeper would,
    finished: StepResult | None = None
    try:
        while finished is None and time.monotonic() - started < B_STEP_S + 5:
            result = run_step(other, "a")
            if result.status == "finished":
                finished = result
            else:
                time.sleep(0.05)
        took = time.monotonic() - started
        b_still_running = busy.is_alive()
        # A poke for A reaching the worker whose step of A hangs is handed back quickly.
        bounced = run_step(worker, "a")
    finally:
        hang.release.set()
        hung.join(timeout=10)
        busy.join(timeout=10)

    # Then A is finished from the journal within its limit and one lease ttl.
    assert finished is not None and finished.outcome is not None
    assert finished.outcome["text"] == "done: unhung"
    assert took < (STEP_LIMIT_MS + LEASE.ttl_ms) / 1000 + 1.5, f"took {took:.1f} s"
    assert b_still_running, "B's step should still be running"
    assert (bounced.status, bounced.retry_after_ms) == ("busy", LEASE.renew_ms)
    assert hang.calls == 2
    assert results["a"].status == "lease_lost"
    assert results["b"].status == "finished"
    assert store.turns.active("a") is None and store.turns.active("b") is None
