"""Celery settings for the lash-tasks fleet (DESIGN §10). Values come from `Settings` (LASH_*).

The app (`lash_tasks.worker.app`) configures itself from this module by its full name, so a
`celeryconfig` module of another project on `sys.path` cannot replace it.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from lash_tasks.settings import Settings
from lash_tasks.worker import queues
from lash_tasks.worker.beat_schedule import beat_schedule_for

_settings = Settings.from_env()
_settings.ensure_local_dirs()

beat_schedule = beat_schedule_for(_settings)

broker_url = _settings.broker_url
result_backend = _settings.result_backend
broker_connection_retry_on_startup = True
# A broker outage, however long, never ends a worker: it reconnects (backing off to one try
# per 30 s) and carries on. Messages lost meanwhile are re-created by the sweeper.
broker_connection_retry = True
broker_connection_max_retries = None
# A step that ends while Redis is down has committed; storing its result waits for Redis
# (a read-before-write in Celery's store is not covered by the backend's own retry policy).
result_backend_always_retry = True
result_backend_max_retries = 120
result_backend_max_sleep_between_retries_ms = 2000

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
# Fencing makes cancelling on connection loss unnecessary (a step that cannot ack is redone
# harmlessly), and the threads pool cannot cancel: with True, celery 5.5/5.6 end the worker
# (`does not implement kill_job`) when Redis restarts under a running step (DESIGN §10).
worker_cancel_long_running_tasks_on_connection_loss = False
worker_max_tasks_per_child = 2000
worker_max_memory_per_child = 512_000  # KiB
result_expires = 3600

# Every lash queue is declared, so `celery -A lash_tasks.worker.app worker` with no `-Q`
# consumes them all (left to Celery, such a worker would consume only the default queue and
# never run ingress or maintenance sent to it). Each queue sits behind a direct exchange of
# its own name, as Celery would create it for a sender that only names the queue, so such a
# sender's messages and ours meet in the same queue.
task_queues = tuple(Queue(name, Exchange(name, "direct"), routing_key=name) for name in queues.ALL)
task_default_queue = queues.TURNS
task_routes = {pattern: {"queue": queue} for pattern, queue in queues.ROUTES.items()}

# Task events feed Flower.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True
