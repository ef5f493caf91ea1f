"""`spawn_subagent`: a parent turn starts a subagent, the child's answer wakes the parent,
and bad calls (empty task, unknown model) write nothing (real store, both dialects)."""

from __future__ import annotations

from lash_tasks.machine.processes import ProcessStatus, child_session_id
from lash_tasks.runtime.process_runner import run_process
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.runtime.subagent_tool import SubagentTools
from lash_tasks.tools.registry import ToolRegistry
from tests.runtime.conftest import Harness, builtin_tools

SPAWN = (
    '[{"match": "delegate", "tool_calls": [{"name": "spawn_subagent", '
    '"arguments": {"task": "sum 2 and 3"}}]},'
    ' {"match": "empty", "tool_calls": [{"name": "spawn_subagent", '
    '"arguments": {"task": "  "}}]},'
    ' {"match": "other model", "tool_calls": [{"name": "spawn_subagent", '
    '"arguments": {"task": "x", "model": "gpt-unknown"}}]}]'
)


def tools_with_subagents(harness: Harness, started: list[str]) -> ToolRegistry:
    registry = builtin_tools()
    registry.add_provider(
        SubagentTools(harness.store.processes, harness.store.sessions, started.append, {"scripted"})
    )
    return registry


def test_parent_spawns_a_subagent_and_sees_its_answer(harness: Harness) -> None:
    """The call registers a process and answers with its handle; the child's answer
    completes the process and reaches the parent as a message."""
    started: list[str] = []
    core, _ = harness.core(SPAWN, tools=lambda: tools_with_subagents(harness, started))
    parent = harness.session("parent")
    harness.turn(core, parent, "please delegate")
    (process_id,) = set(started)
    assert harness.store.processes.require(process_id).wake_session_id == parent
    handle = [m.text for m in harness.messages(parent) if m.role == "tool"]
    assert handle and process_id in handle[0]
    # The process starts the child; the child's turn runs; the process completes.
    assert run_process(core, process_id).status == "started_child"
    harness.run_until_settled(core, child_session_id(process_id))
    assert run_process(core, process_id).status == "completed"
    assert harness.store.processes.require(process_id).status is ProcessStatus.COMPLETED
    # The parent's next turn sees the answer as a message.
    assert run_step(core, parent).status == "finished"
    texts = [m.text for m in harness.messages(parent)]
    assert any("echo: sum 2 and 3" in text for text in texts), texts


def test_bad_spawns_are_tool_errors_and_register_nothing(harness: Harness) -> None:
    """An empty task or an unknown model comes back as an error result; no process."""
    started: list[str] = []
    core, _ = harness.core(SPAWN, tools=lambda: tools_with_subagents(harness, started))
    parent = harness.session("parent")
    harness.turn(core, parent, "empty please")
    harness.turn(core, parent, "use the other model")
    errors = [m.text for m in harness.messages(parent) if m.role == "tool"]
    assert "non-empty task" in errors[0]
    assert "unknown model 'gpt-unknown'" in errors[1]
    assert started == [] and harness.store.processes.for_session(parent) == []
