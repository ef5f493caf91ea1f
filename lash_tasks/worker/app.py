"""The Celery app: the one module-level singleton, configured from worker/celery_config.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from celery import Celery

from lash_tasks.worker import celery_config

app = Celery("lash_tasks")
app.config_from_object(celery_config)


F = TypeVar("F", bound=Callable[..., Any])


def lash_task(name: str, **options: Any) -> Callable[[F], F]:
    """`app.task` with a type: Celery ships no annotations, and mypy runs strict here."""
    return cast(Callable[[F], F], app.task(name=name, **options))


def on_signal(signal: Any) -> Callable[[F], F]:
    return cast(Callable[[F], F], signal.connect)


# Last: the tasks and lifecycle modules import the helpers above.
app.autodiscover_tasks(["lash_tasks.worker"], related_name="tasks", force=True)
import lash_tasks.worker.lifecycle  # noqa: E402, F401  (worker start-up checks and heartbeat)
