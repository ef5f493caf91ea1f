"""lash-tasks: durable LLM agent sessions on a Celery worker fleet."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from lash_tasks.errors import LashError

if TYPE_CHECKING:
    from lash_tasks.async_client import AsyncClient
    from lash_tasks.client import Client

try:
    __version__ = version("lash-tasks")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["AsyncClient", "Client", "LashError", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import lash_tasks.machine` must not load the database stack.
    if name == "Client":
        from lash_tasks.client import Client

        return Client
    if name == "AsyncClient":
        from lash_tasks.async_client import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'lash_tasks' has no attribute {name!r}")
