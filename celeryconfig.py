"""Entry point for tools that look for a `celeryconfig` module by name. Not installed: the
settings live in lash_tasks/worker/celery_config.py, which the app reads by its full name."""

from lash_tasks.worker.celery_config import *  # noqa: F403
