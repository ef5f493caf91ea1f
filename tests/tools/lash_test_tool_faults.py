"""Tools that fail the way real ones do in production, for fleet tests (via LASH_TOOLS).

- `exit_process` kills the process running it, every time (an OOM, a segfaulting library).
  Each run appends one line to the file named by LASH_TEST_FAULT_LOG first.
- `hang_here` never returns in a worker started with LASH_TEST_HANG_TOOL=1 (a call stuck
  on a dead socket); elsewhere it answers "not hung" at once.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from lash_tasks.machine.messages import ToolManifest
from lash_tasks.tools.contract import ToolContext, ToolResult

HANG_ENV = "LASH_TEST_HANG_TOOL"
LOG_ENV = "LASH_TEST_FAULT_LOG"
HANG_S = 600


class FaultTools:
    name = "faults"

    def manifests(self) -> list[ToolManifest]:
        return [
            ToolManifest(name="exit_process", description="Kill the worker process."),
            ToolManifest(name="hang_here", description="Hang in a marked worker."),
        ]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        if tool_name == "exit_process":
            log = os.environ.get(LOG_ENV)
            if log:
                fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.write(fd, f"{os.getpid()} {context.session_id}\n".encode())
                os.close(fd)
            os._exit(17)
        if os.environ.get(HANG_ENV) == "1":
            threading.Event().wait(HANG_S)
        return ToolResult("not hung")
