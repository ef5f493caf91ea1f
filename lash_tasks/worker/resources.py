"""Per-process dependencies of a worker: engine, stores, LLM provider, tool registry.

Built lazily in the process that uses them and reset after fork
(`worker_process_init`), so no connection or HTTP client is ever inherited.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.attachments import blob_store_from_url
from lash_tasks.events.emitter import StepEventsFactory
from lash_tasks.machine import ModelSpec
from lash_tasks.metrics.exporter import MetricsExporter
from lash_tasks.metrics.worker_metrics import MetricsTraceSink, WorkerMetrics
from lash_tasks.providers.registry import LlmProviders
from lash_tasks.runtime.lash_core import LashCore, LeaseTimings
from lash_tasks.runtime.subagent_tool import SubagentTools
from lash_tasks.runtime.trace import JsonlTraceSink, NullTraceSink, TraceSink
from lash_tasks.settings import Settings
from lash_tasks.store.migrate import require_current_schema
from lash_tasks.store.store import Store
from lash_tasks.tools.loading import registry_from_env
from lash_tasks.tools.registry import ToolRegistry
from lash_tasks.worker.heartbeat import Heartbeat
from lash_tasks.worker.replies import CeleryReplySender


@dataclass
class Resources:
    settings: Settings
    store: Store
    blobs: Any
    core: LashCore
    redis: Any = None
    # Live events of this process's steps (and of cancels taken by its ingress tasks).
    events: StepEventsFactory = field(default_factory=StepEventsFactory.disabled)
    # What this process did, for its metrics endpoint (LASH_METRICS_PORT).
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    exporter: MetricsExporter | None = None

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
        self.events.close()
        self.core.close()
        if self.redis is not None:
            self.redis.close()


def _celery_app() -> Any:
    # Imported when first needed: the app module imports this one (through the tasks).
    from lash_tasks.worker.app import app

    return app


def trace_sink_from_env(env: dict[str, str]) -> TraceSink:
    """LASH_TRACE_PATH=/path/trace.jsonl writes JSONL trace records; unset writes none."""
    path = env.get("LASH_TRACE_PATH")
    return JsonlTraceSink(path) if path else NullTraceSink()


@dataclass(frozen=True)
class WorkerIdentity:
    """The lease owner of a worker process: stable across restarts (`owner_id`), and one
    incarnation per process start."""

    owner_id: str
    incarnation_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def build_resources(
    settings: Settings | None = None, identity: WorkerIdentity | None = None
) -> Resources:
    """Build and validate everything a step needs; any wiring error raises here."""
    settings = settings or Settings.from_env()
    identity = identity or WorkerIdentity(f"{os.uname().nodename}:{os.getpid()}")
    store = Store.from_url(settings.database_url)
    blobs = blob_store_from_url(settings.attachments_url)
    env = dict(settings.env)
    registry_from_env(env)  # fail at start-up, not mid-turn, on a bad LASH_TOOLS
    events = StepEventsFactory.from_settings(settings)
    metrics = WorkerMetrics()
    core = (
        LashCore.builder()
        .with_sql_host(store, blobs)
        .llm_providers(LlmProviders.from_settings(settings))
        .model(ModelSpec(id=settings.model))
        .tools(lambda: _with_subagents(registry_from_env(env), store, settings.model))
        .lease_timings(LeaseTimings(settings.lease_ttl_ms, settings.lease_renew_ms))
        .owner(identity.owner_id, identity.incarnation_id)
        .trace_sink(MetricsTraceSink(metrics, trace_sink_from_env(env)))
        .step_time_limit(settings.step_time_limit_s)
        .step_max_attempts(settings.step_max_attempts)
        .steps_per_delivery(settings.steps_per_delivery)
        .step_events(events)
        .reply_sender(CeleryReplySender(_celery_app, store.replies))
        .process_poke(_poke_process)
        .build()
    )
    redis_client = None
    if settings.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    return Resources(settings, store, blobs, core, redis_client, events, metrics)


def _with_subagents(registry: ToolRegistry, store: Store, model: str) -> ToolRegistry:
    """Every worker session may start subagents; a subagent's model must be one this
    worker's LLM provider serves."""
    registry.add_provider(SubagentTools(store.processes, store.sessions, _poke_process, {model}))
    return registry


def _poke_process(process_id: str) -> None:
    from lash_tasks.worker.app import app  # the app imports the tasks, which import us
    from lash_tasks.worker.pokes import poke_process

    poke_process(app, process_id)


class _ProcessResources:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resources: Resources | None = None
        self._heartbeat: Heartbeat | None = None
        self._pid = os.getpid()

    def get(self) -> Resources:
        with self._lock:
            if self._resources is None or self._pid != os.getpid():
                self._resources = build_resources()
                self._pid = os.getpid()
            return self._resources

    def start_worker(
        self,
        owner_id: str,
        poke: Callable[[Resources, Sequence[str]], None],
        *,
        check_schema: bool = True,
    ) -> Resources:
        """Build this worker process's resources under a stable owner id and a new
        incarnation, register its heartbeat (taking over from a dead predecessor) and
        start beating. Any wiring error or a live namesake raises, before any task runs."""
        settings = Settings.from_env()
        res = build_resources(settings, WorkerIdentity(owner_id))
        # Its own engine: a pool busy with steps must not delay a beat into a false death.
        beats = Store.from_url(settings.database_url)
        try:
            if check_schema:
                require_current_schema(res.store.database.engine)
            heartbeat = Heartbeat(
                beats,
                res.core.owner_id,
                res.core.incarnation_id,
                interval_ms=settings.heartbeat_ms,
                lease_ttl_ms=settings.lease_ttl_ms,
                poke=lambda sessions: poke(res, sessions),
            )
            heartbeat.register()
        except BaseException:
            beats.close()
            res.close()
            raise
        with self._lock:
            self._resources, self._heartbeat, self._pid = res, heartbeat.start(), os.getpid()
        return res

    def reset_after_fork(self) -> None:
        # The parent's engines, HTTP client and heartbeat belong to the parent: drop them,
        # never reuse or close them (closing would end the parent's connections).
        if self._pid != os.getpid():
            for store in self._stores():
                store.database.engine.dispose(close=False)
        self._resources = None
        self._heartbeat = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def shutdown(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                if self._heartbeat is not None:
                    self._heartbeat.stop(retire=True)
                    self._heartbeat.store.close()
                if self._resources is not None:
                    self._resources.close()
            self._resources = None
            self._heartbeat = None

    def _stores(self) -> list[Store]:
        stores = [self._resources.store] if self._resources is not None else []
        return stores + ([self._heartbeat.store] if self._heartbeat is not None else [])


process_resources = _ProcessResources()
