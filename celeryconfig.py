"""Celery settings for the lash-tasks fleet (DESIGN §10). Values come from LASH_* variables."""

from __future__ import annotations

from beat_schedule import beat_schedule as beat_schedule
from lash_tasks.settings import Settings

LASH_TASKS_CONFIG = True  # lets the app refuse a different module of the same name

_settings = Settings.from_env()
_settings.ensure_local_dirs()

broker_url = _settings.broker_url
result_backend = _settings.result_backend
broker_connection_retry_on_startup = True

# JSON only: pickle would let anyone who can publish to the broker run code on workers.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
event_serializer = "json"

# A step is acknowledged only after it ran; a worker killed mid-step gets it redelivered.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Celery reads the visibility timeout in three places; all must agree.
broker_transport_options = _settings.broker_transport_options()
result_backend_transport_options = {"visibility_timeout": _settings.visibility_timeout_s}
visibility_timeout = _settings.visibility_timeout_s

task_time_limit = _settings.step_time_limit_s
task_soft_time_limit = max(5, _settings.step_time_limit_s - 30)
worker_soft_shutdown_timeout = 10.0
worker_enable_soft_shutdown_on_idle = True
worker_cancel_long_running_tasks_on_connection_loss = True
worker_max_tasks_per_child = 2000
worker_max_memory_per_child = 512_000  # KiB
result_expires = 3600

task_default_queue = "lash.turns"
task_routes = {
    "lash.ingress.*": {"queue": "lash.ingress"},
    "lash.session.*": {"queue": "lash.turns"},
    "lash.process.*": {"queue": "lash.processes"},
    "lash.maintenance.*": {"queue": "lash.maintenance"},
}

# Task events feed Flower.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True
