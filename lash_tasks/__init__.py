"""lash-tasks: durable LLM agent sessions on a Celery worker fleet."""

from lash_tasks.client import Client
from lash_tasks.errors import LashError

__all__ = ["Client", "LashError"]
