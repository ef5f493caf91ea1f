"""Session commands: what each one does to the session, decided purely.

Commands run before any turn work, one per fenced commit, and never become prompt text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lash_tasks.machine.graph import NodeDraft

KNOWN_COMMANDS = ("refresh_tool_catalog", "reset", "noop")


@dataclass(frozen=True)
class CommandPlan:
    """What the command's commit applies.

    `refresh_tools`: take the worker's current tool catalog as the session's, one
    generation on. `reset`: the next input starts a new root (the old conversation becomes
    orphaned history). `record`: a node noting a command this build does not know, settled
    so that it cannot block the session.
    """

    command: str
    refresh_tools: bool = False
    reset: bool = False
    record: NodeDraft | None = None


def plan_command(payload: Mapping[str, Any], *, batch_id: str, next_revision: int) -> CommandPlan:
    command = str(payload.get("command", ""))
    if command == "refresh_tool_catalog":
        return CommandPlan(command, refresh_tools=True)
    if command == "reset":
        return CommandPlan(command, reset=True)
    if command == "noop":
        return CommandPlan(command)
    # Named after the revision this commit creates, which no later commit repeats: the
    # batch id comes back when its source key is reused after vacuum.
    node = NodeDraft(
        f"cmd.{next_revision}.{batch_id}",
        "event",
        {"type": "unknown_command", "command": command},
        "",
    )
    return CommandPlan(command, record=node)
