"""Per-process dependencies of a worker: engine, stores, LLM provider, tool registry.

Built lazily in the process that uses them and reset after fork
(`worker_process_init`), so no connection or HTTP client is ever inherited.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.attachments import blob_store_from_url
from lash_tasks.events.emitter import StepEventsFactory
from lash_tasks.machine import ModelSpec
from lash_tasks.providers import llm_provider_from_env
from lash_tasks.runtime.core import LashCore, LeaseTimings
from lash_tasks.runtime.trace import JsonlTraceSink, NullTraceSink, TraceSink
from lash_tasks.settings import Settings
from lash_tasks.store.sql_store import SqlStore
from lash_tasks.tools.loading import registry_from_env


@dataclass
class Resources:
    settings: Settings
    store: SqlStore
    blobs: Any
    core: LashCore
    redis: Any = None
    # Live events of this process's steps (and of cancels taken by its ingress tasks).
    events: StepEventsFactory = field(default_factory=StepEventsFactory.disabled)

    def close(self) -> None:
        self.events.close()
        self.core.close()
        if self.redis is not None:
            self.redis.close()


def trace_sink_from_env(env: dict[str, str]) -> TraceSink:
    """LASH_TRACE_PATH=/path/trace.jsonl writes JSONL trace records; unset writes none."""
    path = env.get("LASH_TRACE_PATH")
    return JsonlTraceSink(path) if path else NullTraceSink()


def build_resources(settings: Settings | None = None) -> Resources:
    settings = settings or Settings.from_env()
    store = SqlStore.from_url(settings.database_url)
    blobs = blob_store_from_url(settings.attachments_url)
    env = dict(settings.env)
    registry_from_env(env)  # fail at start-up, not mid-turn, on a bad LASH_TOOLS
    core = (
        LashCore.builder()
        .with_sql_host(store, blobs)
        .llm_provider(llm_provider_from_env(env))
        .model(ModelSpec(id=settings.model))
        .tools(lambda: registry_from_env(env))
        .lease_timings(LeaseTimings(settings.lease_ttl_ms, settings.lease_renew_ms))
        .owner(f"{os.uname().nodename}:{os.getpid()}")
        .trace_sink(trace_sink_from_env(env))
        .step_time_limit(settings.step_time_limit_s)
        .step_max_attempts(settings.step_max_attempts)
        .build()
    )
    redis_client = None
    if settings.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    events = StepEventsFactory.from_settings(settings)
    return Resources(settings, store, blobs, core, redis_client, events)


class _ProcessResources:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resources: Resources | None = None
        self._pid = os.getpid()

    def get(self) -> Resources:
        with self._lock:
            if self._resources is None or self._pid != os.getpid():
                self._resources = build_resources()
                self._pid = os.getpid()
            return self._resources

    def reset_after_fork(self) -> None:
        # The parent's engine and HTTP client belong to the parent; drop, never reuse.
        self._resources = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def shutdown(self) -> None:
        with self._lock:
            if self._resources is not None and self._pid == os.getpid():
                self._resources.close()
            self._resources = None


process_resources = _ProcessResources()
