"""A tool that counts its runs, for fleet tests of process recovery (via LASH_TOOLS).

`counted_sleep(ms)` appends "<pid> <call id>" to the file named by LASH_TEST_RUN_LOG as it
starts, then sleeps: a test reads how often a background run started, whoever ran it. It is
a background tool (rerunnable): a model's call starts a process.
"""

from __future__ import annotations

import os
import time
from typing import Any

from lash_tasks.machine.messages import ToolManifest
from lash_tasks.tools.contract import ToolContext, ToolResult

RUN_LOG_ENV = "LASH_TEST_RUN_LOG"


class CountedTools:
    name = "counted"
    background_tools = {"counted_sleep": "rerunnable"}

    def manifests(self) -> list[ToolManifest]:
        return [
            ToolManifest(
                name="counted_sleep",
                description="Note the run, then wait for `ms` milliseconds.",
                parameters={
                    "type": "object",
                    "properties": {"ms": {"type": "integer", "minimum": 0}},
                    "required": ["ms"],
                },
            )
        ]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        log = os.environ.get(RUN_LOG_ENV)
        if log:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, f"{os.getpid()} {context.call_id}\n".encode())
            os.close(fd)
        time.sleep(int(arguments.get("ms", 0)) / 1000)
        return ToolResult(f"slept {arguments.get('ms', 0)} ms")
