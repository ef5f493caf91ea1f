"""Bad input around processes (both dialects): each is a typed error or a logged no-op,
and nothing is half-written — a spawn the tool refuses, a background call whose process id
is taken by another registration, a wake for a deleted session, a poke for an unknown
process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lash_tasks.errors import ToolError
from lash_tasks.machine import ToolCall
from lash_tasks.machine.processes import (
    Disposition,
    ProcessRegistration,
    ProcessStatus,
    background_tool_process_id,
)
from lash_tasks.runtime.assembly import build_runtime
from lash_tasks.runtime.background_tools import start_background_tool
from lash_tasks.runtime.process_runner import run_process
from lash_tasks.runtime.subagent_tool import MAX_TASK_CHARS, SubagentTools
from lash_tasks.tools.contract import ToolContext
from tests.runtime.conftest import Harness
from tests.runtime.test_background_tools import tools
from tests.store_conformance.support import session_row_counts


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({}, "non-empty task"),
        ({"task": ""}, "non-empty task"),
        ({"task": "   "}, "non-empty task"),
        ({"task": 7}, "non-empty task"),
        ({"task": "x" * (MAX_TASK_CHARS + 1)}, f"longer than {MAX_TASK_CHARS}"),
        ({"task": "sum", "model": ""}, "model must be a non-empty model id"),
        ({"task": "sum", "model": 7}, "model must be a non-empty model id"),
        ({"task": "sum", "model": "gpt-unknown"}, "unknown model 'gpt-unknown'"),
    ],
)
def test_a_refused_spawn_names_the_field_and_registers_nothing(
    harness: Harness, arguments: dict[str, Any], says: str
) -> None:
    """spawn_subagent with an empty, missing, non-text or overlong task, or an empty or
    unknown model: a ToolError the model reads; no process, no poke."""
    sid = harness.session()
    started: list[str] = []
    tools = SubagentTools(harness.store.processes, harness.store.sessions, started.append, {"m"})

    with pytest.raises(ToolError, match=says):
        tools.execute("spawn_subagent", arguments, ToolContext(sid, "turn-1", "call-1"))

    assert started == [] and harness.store.processes.for_session(sid) == []


def test_a_background_call_whose_process_id_is_taken_registers_nothing(
    harness: Harness,
) -> None:
    """The call's process id already names a different registration: the model gets an
    error naming the conflict; the other process is untouched and nobody is poked."""
    poked: list[str] = []
    core, _ = harness.core(tools=tools, process_poke=poked.append)
    sid = harness.session()
    taken = background_tool_process_id(sid, "turn-1", "call-1")
    other = ProcessRegistration(taken, "tool", Disposition.RERUNNABLE, sid, {"tool": "other"})
    harness.store.processes.register(other)
    runtime = build_runtime(core, harness.store.sessions.load(sid), "rebuild")
    call = ToolCall("call-1", "write_report", json.dumps({"lines": 1}))

    result = start_background_tool(
        runtime, call, ToolContext(sid, "turn-1", "call-1"), "owner_bound"
    )

    assert result.is_error and "registered with a different registration" in result.text
    assert poked == []
    (process,) = harness.store.processes.for_session(sid)
    assert process.registration_hash == other.registration_hash


def test_a_wake_for_a_deleted_session_is_a_noop(harness: Harness) -> None:
    """The session a process wakes is deleted before it completes: the process completes,
    pokes nobody, and writes no row for the deleted session."""
    harness.session("s1")
    harness.session("s2")
    calc = {"tool": "calculator", "arguments": {"expression": "1+1"}, "call_id": "c1"}
    harness.store.processes.register(
        ProcessRegistration("p1", "tool", Disposition.RERUNNABLE, "s1", calc, wake_session_id="s2")
    )
    harness.store.sessions.delete("s2")
    core, _ = harness.core()

    ran = run_process(core, "p1")

    assert (ran.status, ran.poke_sessions) == ("completed", ())
    assert harness.store.processes.require("p1").status is ProcessStatus.COMPLETED
    assert set(session_row_counts(harness.store, "s2").values()) == {0}


def test_a_poke_for_an_unknown_process_writes_nothing(harness: Harness) -> None:
    """lash.process.run for an id nobody registered: a logged no-op, no row appears."""
    core, _ = harness.core()

    assert run_process(core, "proc_nobody").status == "unknown"

    assert harness.store.processes.get("proc_nobody") is None
    assert harness.store.maintenance.count_rows("lash_processes") == 0
