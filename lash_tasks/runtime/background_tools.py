"""Starting a background tool: the call registers a process instead of running the tool.

A tool declared background (`tools.contract.BackgroundToolProvider`) answers the model at
once with its process handle. The process id derives from the calling turn and call id, so
a replayed call registers the very same process. The tool surface the call was made under
is captured as the process's environment (through the manifest, owned by the process), so
the run offers exactly the tools the model could call. A worker runs the tool later
(`process_runner`), and its completion wakes the session: the running turn takes the result
at its next step, or a new turn sees it.
"""

from __future__ import annotations

from lash_tasks.errors import LashError
from lash_tasks.machine import ToolCall
from lash_tasks.machine.processes import (
    Disposition,
    ProcessRegistration,
    background_tool_process_id,
)
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.tools.contract import BackgroundDisposition, ToolContext, ToolResult

TOOL_SURFACE = "tool_surface"


def start_background_tool(
    runtime: SessionRuntime,
    call: ToolCall,
    context: ToolContext,
    disposition: BackgroundDisposition,
) -> ToolResult:
    """Register the call's process and answer with its handle; a call the tool could not
    run (unknown tool, bad arguments) registers nothing and says why."""
    refused = runtime.tools.check(call)
    if refused is not None:
        return refused
    core = runtime.core
    store = core.require_store()
    session_id = context.session_id
    process_id = background_tool_process_id(session_id, context.turn_id, call.call_id)
    try:
        env = core.process_envs.put_env(
            session_id, process_id, {TOOL_SURFACE: runtime.tools.snapshot()}
        )
        store.processes.register(
            ProcessRegistration(
                process_id,
                "tool",
                Disposition(disposition),
                session_id,
                {
                    "tool": call.name,
                    "arguments": call.arguments,
                    "call_id": call.call_id,
                    "env": env,
                },
                wake_session_id=session_id,
            )
        )
    except LashError as exc:
        if exc.retryable:
            raise  # the step retries; the same call registers the same process
        return ToolResult(f"could not start {call.name!r} in the background: {exc.message}", True)
    if core.process_poke is not None:
        core.process_poke(process_id)
    return ToolResult(
        f"{call.name} started in the background (process {process_id}); "
        "its result will arrive as a message"
    )
