"""Tool providers, the registry that runs them, and loading them from `LASH_TOOLS`."""

from lash_tasks.tools.builtins import BuiltinTools
from lash_tasks.tools.contract import AttachmentSink, ToolContext, ToolProvider, ToolResult
from lash_tasks.tools.loading import load_tool_providers, registry_from_env
from lash_tasks.tools.registry import ToolRegistry
from lash_tasks.tools.schema import check_schema, validate

__all__ = [
    "AttachmentSink",
    "BuiltinTools",
    "ToolContext",
    "ToolProvider",
    "ToolRegistry",
    "ToolResult",
    "check_schema",
    "load_tool_providers",
    "registry_from_env",
    "validate",
]
