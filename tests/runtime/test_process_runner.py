"""`run_process`: one delivery of a process poke — recovery by disposition, background tool
runs, a subagent's child turn, and the wake its completion sends (real store, both dialects).

A worker's death is written in SQL (its heartbeat row expired), never waited for.
"""

from __future__ import annotations

from sqlalchemy import update

from lash_tasks.machine.processes import (
    Disposition,
    ProcessRegistration,
    ProcessStatus,
    child_session_id,
)
from lash_tasks.runtime.process_runner import run_process
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store import schema as t
from lash_tasks.store.process_records import ProcessLease
from tests.runtime.conftest import Harness

CALC = {"tool": "calculator", "arguments": {"expression": "6*7"}, "call_id": "c1"}


def tool_process(
    harness: Harness, pid: str = "p1", disposition: Disposition = Disposition.RERUNNABLE
) -> None:
    harness.store.processes.register(
        ProcessRegistration(pid, "tool", disposition, "s1", CALC, wake_session_id="s1")
    )


def die_holding(harness: Harness, pid: str, *, started: bool) -> None:
    """A worker took the process lease (and maybe started it), then died."""
    store = harness.store
    assert store.heartbeats.register("dead-worker", "dead-inc", grace_ms=3_000)
    lease = store.processes.try_claim(pid, "dead-worker", "dead-inc", ttl_ms=60_000)
    assert isinstance(lease, ProcessLease)
    if started:
        store.processes.mark_started(lease.fence)
    with store.database.engine.begin() as conn:
        now = store.database.dialect.now_ms(conn)
        conn.execute(
            update(t.worker_heartbeats)
            .where(t.worker_heartbeats.c.incarnation_id == "dead-inc")
            .values(expires_at=now - 1)
        )


def test_unknown_process_is_a_logged_noop(harness: Harness) -> None:
    """A poke for a process id nobody registered does nothing and writes nothing."""
    core, _ = harness.core()
    assert run_process(core, "ghost").status == "unknown"
    assert harness.store.processes.get("ghost") is None


def test_background_tool_runs_completes_and_wakes_once(harness: Harness) -> None:
    """A tool process runs once, completes with its output, wakes its session once; a
    second poke finds it done."""
    harness.session("s1")
    tool_process(harness)
    core, _ = harness.core()
    first = run_process(core, "p1")
    assert (first.status, first.poke_sessions) == ("completed", ("s1",))
    record = harness.store.processes.require("p1")
    assert record.status is ProcessStatus.COMPLETED
    assert record.result is not None and record.result["result"]["text"] == "42"
    assert run_process(core, "p1").status == "done"
    (wake,) = harness.store.queue.list_batches("s1")
    assert wake.payloads[0]["summary"] == "42" and wake.payloads[0]["call_id"] == "c1"


def test_owner_bound_started_under_a_dead_holder_is_abandoned_not_rerun(harness: Harness) -> None:
    """owner_bound + first_started + provably dead holder → abandoned with evidence."""
    harness.session("s1")
    tool_process(harness, disposition=Disposition.OWNER_BOUND)
    die_holding(harness, "p1", started=True)
    core, _ = harness.core()
    assert run_process(core, "p1").status == "abandoned"
    record = harness.store.processes.require("p1")
    assert record.status is ProcessStatus.ABANDONED
    assert record.result is not None
    evidence = record.result["result"]["evidence"]
    assert evidence["dead_incarnation_id"] == "dead-inc" and evidence["first_started_at"]
    assert "text" not in record.result["result"]  # the tool never ran again


def test_owner_bound_never_started_runs_once_after_a_dead_holder(harness: Harness) -> None:
    """owner_bound whose dead holder never started it is started (first_started) and run."""
    harness.session("s1")
    tool_process(harness, disposition=Disposition.OWNER_BOUND)
    die_holding(harness, "p1", started=False)
    core, _ = harness.core()
    assert run_process(core, "p1").status == "completed"
    record = harness.store.processes.require("p1")
    assert record.first_started_at is not None and record.status is ProcessStatus.COMPLETED


def test_rerunnable_under_a_dead_holder_is_rerun(harness: Harness) -> None:
    """A rerunnable process whose holder died mid-run is simply run again."""
    harness.session("s1")
    tool_process(harness)
    die_holding(harness, "p1", started=True)
    core, _ = harness.core()
    assert run_process(core, "p1").status == "completed"


def test_busy_lease_reports_when_to_retry(harness: Harness) -> None:
    """Another live holder → busy with a retry delay; nothing runs."""
    harness.session("s1")
    tool_process(harness)
    assert isinstance(harness.store.processes.try_claim("p1", "other", "inc-o"), ProcessLease)
    core, _ = harness.core()
    result = run_process(core, "p1")
    assert result.status == "busy" and (result.retry_after_ms or 0) > 0
    assert harness.store.processes.require("p1").status is ProcessStatus.RUNNING


def test_externally_owned_is_never_run(harness: Harness) -> None:
    """The fleet never executes an externally owned process."""
    harness.session("s1")
    tool_process(harness, disposition=Disposition.EXTERNALLY_OWNED)
    core, _ = harness.core()
    assert run_process(core, "p1").status == "external"
    assert harness.store.processes.require("p1").status is ProcessStatus.RUNNING


def test_subagent_runs_a_child_turn_and_wakes_its_parent(harness: Harness) -> None:
    """A subagent process creates its child session (parent recorded) with the task as
    input; once the child's turn finishes, the process completes with its answer and the
    parent's next turn sees it."""
    parent = harness.session("parent")
    harness.store.processes.register(
        ProcessRegistration(
            "sub1",
            "subagent",
            Disposition.RERUNNABLE,
            parent,
            {"task": "find the answer", "call_id": "c9"},
            wake_session_id=parent,
        )
    )
    core, _ = harness.core()
    started = run_process(core, "sub1")
    child = child_session_id("sub1")
    assert (started.status, started.poke_sessions) == ("started_child", (child,))
    record = harness.store.sessions.record(child)
    assert (record.parent_session_id, record.parent_process_id) == (parent, "sub1")
    assert [c.session_id for c in harness.store.sessions.children(parent)] == [child]
    # Given the child's turn runs (on any worker) ...
    harness.run_until_settled(core, child)
    # ... the process completes with its answer and wakes the parent once.
    done = run_process(core, "sub1")
    assert (done.status, done.poke_sessions) == ("completed", (parent,))
    assert run_process(core, "sub1").status == "done"
    assert harness.store.processes.require("sub1").result["summary"] == "echo: find the answer"  # type: ignore[index]
    assert run_step(core, parent).status == "finished"
    texts = [m.text for m in harness.messages(parent)]
    assert any("echo: find the answer" in text for text in texts), texts
