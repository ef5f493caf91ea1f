"""lash-tasks: durable LLM agent sessions on a Celery worker fleet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lash_tasks.errors import LashError

if TYPE_CHECKING:
    from lash_tasks.client import Client

__all__ = ["Client", "LashError"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import lash_tasks.machine` must not load the database stack.
    if name == "Client":
        from lash_tasks.client import Client

        return Client
    raise AttributeError(f"module 'lash_tasks' has no attribute {name!r}")
