"""`spawn_subagent(task, model?)`: the built-in tool that starts a subagent process.

The call registers a `subagent` process (rerunnable: re-running it only re-checks its child
session) whose work is a turn in a child session, and answers at once with its handle. The
process id derives from the calling turn and call id, so a replayed call registers the very
same process. Its completion wakes the calling session: the running turn picks the answer
up at its next step, or a new turn sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from lash_tasks.errors import LashError, ToolError
from lash_tasks.machine import ModelSpec, ToolManifest, parse_model_spec
from lash_tasks.machine.processes import Disposition, ProcessRegistration, subagent_process_id
from lash_tasks.store.contracts import ProcessStore, SessionStore
from lash_tasks.tools.contract import ToolContext, ToolResult

MAX_TASK_CHARS = 20_000

SPAWN_SUBAGENT = ToolManifest(
    name="spawn_subagent",
    description=(
        "Start a subagent that works on `task` in a session of its own and returns at once "
        "with a handle. Its final answer arrives later as a message in this conversation."
    ),
    parameters={
        "type": "object",
        "properties": {
            "task": {"type": "string", "description": "what the subagent should do"},
            "model": {"type": "string", "description": "model id (default: this session's)"},
        },
        "required": ["task"],
        "additionalProperties": False,
    },
)


class SubagentTools:
    """A tool provider over the process registry. `started` publishes the process poke
    (after its registration committed); `known_models`, when given, limits `model`."""

    name = "subagents"

    def __init__(
        self,
        processes: ProcessStore,
        sessions: SessionStore,
        started: Callable[[str], None],
        known_models: Collection[str] | None = None,
    ) -> None:
        self.processes = processes
        self.sessions = sessions
        self.started = started
        self.known_models = known_models

    def manifests(self) -> list[ToolManifest]:
        return [SPAWN_SUBAGENT]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        if tool_name != SPAWN_SUBAGENT.name:
            raise ToolError(f"unknown tool {tool_name!r}")
        task = arguments.get("task")
        if not isinstance(task, str) or not task.strip():
            raise ToolError("spawn_subagent needs a non-empty task")
        if len(task) > MAX_TASK_CHARS:
            raise ToolError(f"spawn_subagent task is longer than {MAX_TASK_CHARS} characters")
        parent = self.sessions.record(context.session_id)
        policy = parent.policy
        model = arguments.get("model")
        if model is not None:
            spec = self._model(model)
            policy = policy.model_copy(update={"model": spec}) if policy is not None else None
        process_id = subagent_process_id(context.session_id, context.turn_id, context.call_id)
        registration = ProcessRegistration(
            process_id,
            "subagent",
            Disposition.RERUNNABLE,
            context.session_id,
            {
                "task": task,
                "call_id": context.call_id,
                "policy": policy.model_dump(mode="json") if policy is not None else None,
            },
            wake_session_id=context.session_id,
        )
        try:
            self.processes.register(registration)
        except LashError as exc:
            raise ToolError(f"could not start the subagent: {exc.message}") from exc
        self.started(process_id)
        return ToolResult(
            f"subagent started (process {process_id}); its answer will arrive as a message"
        )

    def _model(self, model: object) -> ModelSpec:
        if not isinstance(model, str) or not model.strip():
            raise ToolError("spawn_subagent model must be a non-empty model id")
        try:
            spec = parse_model_spec({"id": model})
        except LashError as exc:
            raise ToolError(f"spawn_subagent model: {exc.message}") from exc
        if self.known_models is not None and spec.id not in self.known_models:
            known = ", ".join(sorted(self.known_models)) or "(none)"
            raise ToolError(f"unknown model {spec.id!r} for a subagent; known: {known}")
        return spec
