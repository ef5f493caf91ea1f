"""A tool that logs one warning, for fleet tests of the log format (via LASH_TOOLS)."""

from __future__ import annotations

import logging
from typing import Any

from lash_tasks.machine.messages import ToolManifest
from lash_tasks.tools.contract import ToolContext, ToolResult

log = logging.getLogger("lash_test_tool_logging")


class LoggingTools:
    name = "logging"

    def manifests(self) -> list[ToolManifest]:
        return [ToolManifest(name="log_line", description="Log one warning line.")]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        log.warning("tool log line: %s", arguments.get("text", ""))
        return ToolResult("logged")
