"""Background tools (both dialects): a call registers a process and answers with its handle
at once; a worker runs the tool later, under the tool surface it was called with; oversized
output goes to the session's attachments owned by the process; the completion wakes the
session, whose running turn (or next turn) sees the result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lash_tasks.machine import ToolManifest
from lash_tasks.machine.processes import Disposition, ProcessStatus
from lash_tasks.machine.tool_budget import ToolOutputBudget
from lash_tasks.runtime.process_envs import BlobProcessEnvStore
from lash_tasks.runtime.process_runner import run_process
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.tools.builtins import BuiltinTools
from lash_tasks.tools.contract import ToolContext, ToolResult
from lash_tasks.tools.registry import ToolRegistry
from tests.runtime.conftest import Harness

RUNS: list[dict[str, Any]] = []


class ReportTools:
    """`write_report(lines)` runs in the background (owner_bound): it notes each run."""

    name = "reports"
    background_tools = {"write_report": "owner_bound"}

    def manifests(self) -> list[ToolManifest]:
        return [
            ToolManifest(
                "write_report",
                "Write a long report in the background.",
                {
                    "type": "object",
                    "properties": {"lines": {"type": "integer", "minimum": 1}},
                    "required": ["lines"],
                },
            )
        ]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        RUNS.append({"session_id": context.session_id, "arguments": arguments})
        return ToolResult("\n".join(f"report line {i}" for i in range(arguments["lines"])))


def tools() -> ToolRegistry:
    return ToolRegistry([BuiltinTools(), ReportTools()])


def report_rule(lines: int | str) -> str:
    """The model calls write_report, then (after the handle) answers at once."""
    return json.dumps(
        [
            {
                "match": "write it",
                "tool_calls": [{"name": "write_report", "arguments": {"lines": lines}}],
            }
        ]
    )


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    RUNS.clear()


def test_a_background_call_answers_with_a_handle_and_registers_its_process(
    harness: Harness,
) -> None:
    """The step does not run the tool: the model gets the handle, the process is
    registered with the declared disposition and woken session, and a worker is poked."""
    poked: list[str] = []
    core, _ = harness.core(report_rule(3), tools=tools, process_poke=poked.append)
    sid = harness.session()

    result = harness.turn(core, sid, "write it please")

    assert result.status == "finished"
    assert RUNS == []
    (process,) = harness.store.processes.for_session(sid)
    assert (process.kind, process.disposition) == ("tool", Disposition.OWNER_BOUND)
    assert process.wake_session_id == sid and process.status is ProcessStatus.RUNNING
    assert poked == [process.process_id]
    handle = next(m for m in harness.messages(sid) if m.role == "tool")
    assert handle.text.startswith(
        f"write_report started in the background (process {process.process_id})"
    )
    # Its environment went through the manifest, owned by the process.
    rows = harness.store.manifest.rows(sid)
    assert [(r.owner_kind, r.owner_id) for r in rows] == [("process", process.process_id)]


def test_the_run_completes_and_its_result_reaches_the_session(harness: Harness) -> None:
    """A worker runs the tool once; its completion wakes the session, whose next turn
    shows the model the result as a message naming the call."""
    core, _ = harness.core(report_rule(2), tools=tools)
    sid = harness.session()
    harness.turn(core, sid, "write it please")
    (process,) = harness.store.processes.for_session(sid)

    ran = run_process(core, process.process_id)

    assert ran.status == "completed" and ran.poke_sessions == (sid,)
    assert [{"session_id": sid, "arguments": {"lines": 2}}] == RUNS
    assert run_process(core, process.process_id).status == "done"
    woken = run_step(core, sid)
    assert woken.status == "finished"
    notice = harness.messages(sid)[-2]
    assert notice.role == "user"
    assert f"[background process {process.process_id} completed; result of tool call" in notice.text
    assert "report line 0\nreport line 1" in notice.text
    assert len(RUNS) == 1


def test_oversized_output_goes_to_an_attachment_owned_by_the_process(
    harness: Harness,
) -> None:
    """Output over the budget is put through the session's attachment facade with the
    process as owner, stamped by the completion; the wake names it and the model sees the
    budgeted view."""
    budget = ToolOutputBudget(max_bytes=512, max_lines=5)
    core, _ = harness.core(report_rule(400), tools=tools, budget=budget)
    sid = harness.session()
    harness.turn(core, sid, "write it please")
    (process,) = harness.store.processes.for_session(sid)

    run_process(core, process.process_id)

    terminal = harness.store.processes.events_after(process.process_id)[-1]
    (attachment_id,) = terminal.payload["result"]["attachments"]
    row = harness.store.manifest.row(sid, attachment_id)
    assert row is not None and (row.owner_kind, row.owner_id) == ("process", process.process_id)
    assert row.committed_at is not None
    full = harness.blobs.get(attachment_id).decode()
    assert full.count("report line") == 400
    (wake,) = harness.store.queue.list_batches(sid)
    assert wake.payloads[0]["attachments"] == [attachment_id]
    run_step(core, sid)
    notice = harness.messages(sid)[-2]
    assert notice.attachments == (attachment_id,)
    assert len(notice.text) < len(full)


def test_bad_arguments_register_nothing(harness: Harness) -> None:
    """A call the tool could not run answers with an error and registers no process."""
    core, _ = harness.core(report_rule("many"), tools=tools)
    sid = harness.session()

    harness.turn(core, sid, "write it please")

    handle = next(m for m in harness.messages(sid) if m.role == "tool")
    assert handle.is_error and "invalid arguments" in handle.text
    assert harness.store.processes.for_session(sid) == []
    assert harness.store.manifest.rows(sid) == []


def test_the_run_offers_the_tool_surface_it_was_called_with(harness: Harness) -> None:
    """The process's environment is the session's tool surface at the call: a tool the
    surface did not hold is unknown to the run too."""
    core, _ = harness.core(report_rule(2), tools=tools)
    sid = harness.session()
    harness.turn(core, sid, "write it please")
    (process,) = harness.store.processes.for_session(sid)
    envs = core.process_envs
    assert isinstance(envs, BlobProcessEnvStore)
    env = envs.get_env(sid, process.input["env"])
    assert "write_report" in [t["manifest"]["name"] for t in env["tool_surface"]["tools"]]

    other = harness.session("s2")
    with pytest.raises(Exception, match="has no attachment"):
        envs.get_env(other, process.input["env"])
