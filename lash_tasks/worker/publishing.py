"""A Celery app that only publishes (pokes), on the broker of the given settings.

A `Client` pokes through one of these, built from its own settings: two clients of two
fleets in one process each reach their own broker. It registers no tasks and never becomes
Celery's current app, so it cannot be confused with the worker app.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from lash_tasks.settings import Settings


def publishing_app(settings: Settings) -> Any:
    app = Celery("lash-tasks-client", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        # JSON only, as the workers accept nothing else.
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=settings.broker_transport_options(),
        broker_connection_retry_on_startup=True,
    )
    return app
