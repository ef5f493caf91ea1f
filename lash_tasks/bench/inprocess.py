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
from lash_tasks.store.sql_store import SqlStore

BENCH_MODEL = ModelSpec(id="bench")


class DurableMemoryBlobs:
    """In-memory blobs declared durable: these figures measure the database, not disks."""

    durability_tier = "durable"

    def __init__(self) -> None:
        self._inner = InMemoryBlobStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def bench_core(url: str, rules: list[dict[str, Any]] | None = None) -> Iterator[LashCore]:
    store = SqlStore.from_url(url)
    core = (
        LashCore.builder()
        .with_sql_host(store, DurableMemoryBlobs())
        .llm_provider(ScriptedProvider(load_rules(json.dumps(rules or []))))
        .model(BENCH_MODEL)
        .build()
    )
    try:
        yield core
    finally:
        core.close()


def new_session(core: LashCore, session_id: str) -> None:
    core.require_store().create_session(session_id, SessionPolicy(model=BENCH_MODEL))
