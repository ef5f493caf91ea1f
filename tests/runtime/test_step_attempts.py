"""A turn step that keeps failing ends its turn stopped(runtime_error) with the reason after
a bounded number of attempts; steps that only met another worker do not count."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import update

from lash_tasks.errors import ProviderError
from lash_tasks.machine import ToolManifest
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.step_driver import StepResult, run_step
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputState
from lash_tasks.store.store import Store
from lash_tasks.tools.builtins import BuiltinTools
from lash_tasks.tools.contract import ToolContext, ToolResult
from lash_tasks.tools.registry import ToolRegistry
from tests.runtime.conftest import Harness

BREAK = json.dumps([{"match": "break", "tool_calls": [{"name": "broken", "arguments": {}}]}])


class BrokenTool:
    """Returns a result that is not one (no text): the step fails after the tool, every time."""

    name = "broken-tools"

    def manifests(self) -> list[ToolManifest]:
        return [ToolManifest(name="broken", description="returns garbage")]

    def execute(self, tool_name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return ToolResult(text=None)  # type: ignore[arg-type]


def with_broken_tool() -> ToolRegistry:
    return ToolRegistry([BuiltinTools(), BrokenTool()])


def limited(core: LashCore, attempts: int) -> LashCore:
    core.step_max_attempts = attempts
    return core


def expire_session_lease(store: Store, sid: str) -> None:
    with store.database.engine.begin() as conn:
        conn.execute(
            update(t.session_leases)
            .where(t.session_leases.c.session_id == sid)
            .values(expires_at=0)
        )


def test_a_step_that_keeps_failing_ends_its_turn_with_the_reason(harness: Harness) -> None:
    """The same unexpected error on every attempt: after 3 the next step ends the turn
    stopped(runtime_error) naming it, settles its input, and a later input runs."""
    core, _ = harness.core(BREAK, tools=with_broken_tool)
    limited(core, 3)
    store = harness.store
    sid = harness.session()
    broken = harness.enqueue(sid, "break it")
    seen: list[str] = []
    stopped: StepResult | None = None
    for _ in range(8):  # pokes, as Celery's retries and the sweeper would send them
        try:
            stopped = run_step(core, sid)
        except AttributeError:
            seen.append("raised")
            if len(seen) == 1:
                later = harness.enqueue(sid, "and after that")
            continue
        seen.append(stopped.status)
        if stopped.status == "finished":
            break

    assert seen == ["raised", "raised", "raised", "finished"]
    assert stopped is not None
    assert stopped.status == "finished" and stopped.more_work is True
    assert stopped.outcome is not None
    assert (stopped.outcome["status"], stopped.outcome["reason"]) == ("stopped", "runtime_error")
    assert "failed 3 times" in stopped.outcome["text"]
    assert "AttributeError" in stopped.outcome["text"]
    path = store.sessions.load(sid).graph.active_path()
    assert path[0].payload["text"] == "break it"
    assert path[-1].payload["type"] == "turn_stopped"
    assert store.inputs.get(sid, broken.input_id).state == InputState.COMPLETED  # type: ignore[union-attr]
    assert store.turns.active(sid) is None

    follow = run_step(core, sid)
    assert follow.status == "finished"
    assert follow.outcome is not None and follow.outcome["text"] == "echo: and after that"
    assert store.inputs.get(sid, later.input_id).state == InputState.COMPLETED  # type: ignore[union-attr]


def test_the_last_attempt_records_a_transient_provider_failure(harness: Harness) -> None:
    """A provider that answers 503 every time: the step's last attempt records
    stopped(provider_error, retryable) instead of raising for yet another retry."""
    core, llm = harness.core('[{"match": "busy", "fail_first": 99, "fail_status": 503}]')
    limited(core, 2)
    sid = harness.session()
    harness.enqueue(sid, "busy model")
    with pytest.raises(ProviderError):
        run_step(core, sid, final_attempt=False)

    result = run_step(core, sid, final_attempt=False)

    assert result.status == "finished"
    assert result.outcome is not None
    assert (result.outcome["reason"], result.outcome["retryable"]) == ("provider_error", True)
    assert llm.call_count == 2
    assert harness.store.turns.active(sid) is None


def test_steps_that_only_met_another_worker_do_not_count(harness: Harness) -> None:
    """With two attempts allowed (the partitioned step's and the taker's), a step that found
    the effect busy and a step that lost its lease to the taker take their attempts back:
    the turn still finishes normally."""
    store = harness.store
    core_a, llm = harness.core('[{"match": "slow", "delay_ms": 20000}]', owner="worker-a")
    core_b, _ = harness.core(provider=llm, owner="worker-b")
    limited(core_b, 2)
    sid = harness.session()
    harness.enqueue(sid, "slow one")
    results: list[StepResult] = []
    worker = threading.Thread(target=lambda: results.append(run_step(core_a, sid)))
    worker.start()
    while not any(e["status"] == "in_progress" for e in store.journal.entries(sid)):
        worker.join(timeout=0.01)

    expire_session_lease(store, sid)  # worker-a is partitioned from the database
    busy = run_step(core_b, sid)
    assert busy.status == "effect_busy"
    worker.join(timeout=10)
    assert [r.status for r in results] == ["lease_lost"]
    assert store.turns.step_attempts(sid).number == 0  # type: ignore[union-attr]

    llm.rules = ()  # the model answers at once now
    final = run_step(core_b, sid)
    assert final.status == "finished"
    assert final.outcome is not None and final.outcome["text"] == "echo: slow one"
