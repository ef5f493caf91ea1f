"""An in-process core on the benchmark's database: the step without Celery around it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lash_tasks.attachments import InMemoryBlobStore
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.providers import ScriptedProvider, load_rules
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.store.store import Store
from lash_tasks.tools.loading import registry_from_env

BENCH_MODEL = ModelSpec(id="bench")


class DurableMemoryBlobs:
    """In-memory blobs declared durable: these figures measure the database, not disks."""

    durability_tier = "durable"

    def __init__(self) -> None:
        self._inner = InMemoryBlobStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def bench_core(
    url: str, rules: list[dict[str, Any]] | None = None, steps_per_delivery: int = 1
) -> Iterator[tuple[LashCore, Store]]:
    """A core like a worker's (built-in tools, durable journal) on `url`, with the store it
    runs on; one step per `run_step` unless asked otherwise, so that figures are per step."""
    store = Store.from_url(url)
    core = (
        LashCore.builder()
        .with_sql_host(store, DurableMemoryBlobs())
        .llm_provider(ScriptedProvider(load_rules(json.dumps(rules or []))))
        .model(BENCH_MODEL)
        .tools(lambda: registry_from_env({}))
        .steps_per_delivery(steps_per_delivery)
        .build()
    )
    try:
        yield core, store
    finally:
        core.close()


def new_session(store: Store, session_id: str) -> None:
    store.sessions.create(session_id, SessionPolicy(model=BENCH_MODEL))
