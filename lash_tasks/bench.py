"""Benchmarks that print figures and ratios measured side by side in one run.

- active path: loading the active path of a 20,000-node session (many branches, path of
  50) vs a 50-node session on PostgreSQL. Target ratio ≤ 1.5: reads cost O(path).
- step overhead: a full durable turn step (lease, rebuild, journal, fenced commit) vs the
  bare LLM call it wraps, with the scripted provider sleeping like a fast real model.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from lash_tasks.machine import (
    ClearActiveTurn,
    CommitDraft,
    GraphReplaceFull,
    Message,
    ModelSpec,
    Node,
    SessionPolicy,
)
from lash_tasks.store.migrate import upgrade
from lash_tasks.store.records import ActivePath, Busy
from lash_tasks.store.sql_store import SqlStore

PG_ADMIN_URL = os.environ.get(
    "LASH_BENCH_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark run, dropped afterwards."""
    name = f"lash_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def build_branchy_graph(total: int, path_len: int, branches: int) -> tuple[list[Node], str]:
    """A trunk of `path_len` nodes (the active path) plus side branches up to `total`."""
    now = datetime.now(UTC).isoformat()
    nodes: list[Node] = []
    parent: str | None = None
    for i in range(path_len):
        node_id = f"t{i}"
        nodes.append(Node(node_id, parent, "message", Message("user", f"trunk {i}").to_json(), now))
        parent = node_id
    leaf = parent or ""
    side = total - path_len
    per_branch = max(1, side // max(1, branches))
    made = 0
    for b in range(branches):
        parent = f"t{(b * 7) % path_len}"
        for j in range(per_branch if b < branches - 1 else side - made):
            node_id = f"b{b}.{j}"
            payload = Message("assistant", f"branch {b} node {j}").to_json()
            nodes.append(Node(node_id, parent, "message", payload, now))
            parent = node_id
            made += 1
    return nodes, leaf


def _seed(store: SqlStore, session_id: str, nodes: list[Node], leaf: str) -> None:
    store.create_session(session_id, SessionPolicy(model=ModelSpec(id="bench")))
    lease = store.try_claim_lease(session_id, "bench", "bench")
    assert not isinstance(lease, Busy)
    store.commit(
        CommitDraft(
            session_id,
            0,
            lease.fence,
            GraphReplaceFull(tuple(nodes), leaf),
            active_turn=ClearActiveTurn(),
            release_lease=True,
        )
    )


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm caches and plans
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_active_path(url: str, repeats: int = 30, total: int = 20_000) -> dict[str, float]:
    store = SqlStore.from_url(url)
    try:
        big, big_leaf = build_branchy_graph(total, 50, 40)
        small, small_leaf = build_branchy_graph(50, 50, 0)
        _seed(store, "bench-big", big, big_leaf)
        _seed(store, "bench-small", small, small_leaf)
        with store.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        big_loaded = store.load("bench-big", ActivePath())
        assert len(big_loaded.graph) == 50, "active path of the big session must be 50 nodes"
        t_big = _time(lambda: store.load("bench-big", ActivePath()), repeats)
        t_small = _time(lambda: store.load("bench-small", ActivePath()), repeats)
        return {
            "big_nodes": float(total),
            "active_path_big_ms": t_big * 1000,
            "active_path_small_ms": t_small * 1000,
            "ratio": t_big / t_small,
        }
    finally:
        store.close()


def bench_step_overhead(url: str, turns: int = 20, llm_delay_ms: int = 200) -> dict[str, float]:
    """Durable step wall time vs the LLM call inside it (scripted provider with a delay)."""
    from lash_tasks.attachments import InMemoryBlobStore
    from lash_tasks.providers import ScriptedProvider, load_rules
    from lash_tasks.runtime.core import LashCore
    from lash_tasks.runtime.step import run_step
    from lash_tasks.store.records import InputDraft

    store = SqlStore.from_url(url)
    rules = load_rules(f'[{{"match": "", "delay_ms": {llm_delay_ms}}}]')
    llm = ScriptedProvider(rules)
    core = (
        LashCore.builder()
        .with_sql_host(store, _DurableMemoryBlobs(InMemoryBlobStore()))
        .llm_provider(llm)
        .model(ModelSpec(id="bench"))
        .build()
    )
    try:
        store.create_session("bench-steps", SessionPolicy(model=ModelSpec(id="bench")))
        step_times, llm_times = [], []
        for i in range(turns):
            store.enqueue_input(InputDraft("bench-steps", f"k{i}", {"text": f"turn {i}"}))
            started = time.perf_counter()
            result = run_step(core, "bench-steps")
            step_times.append(time.perf_counter() - started)
            assert result.status == "finished", result
        from lash_tasks.machine import LlmRequest

        request = LlmRequest("bench", (Message("user", "hello"),))
        for _ in range(turns):
            started = time.perf_counter()
            llm.complete(request)
            llm_times.append(time.perf_counter() - started)
        step_ms = statistics.median(step_times) * 1000
        llm_ms = statistics.median(llm_times) * 1000
        return {
            "llm_call_ms": llm_ms,
            "durable_step_ms": step_ms,
            "overhead_ms": step_ms - llm_ms,
            "overhead_ratio": (step_ms - llm_ms) / llm_ms,
        }
    finally:
        store.close()


class _DurableMemoryBlobs:
    """In-memory blobs declared durable: the benchmark measures the database, not disks."""

    durability_tier = "durable"

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def run_benchmarks(quick: bool = False) -> str:
    lines = []
    with scratch_database() as url:
        ap = bench_active_path(url, repeats=10 if quick else 30)
        lines.append(
            f"active path load (PostgreSQL): {int(ap['big_nodes'])}-node session "
            f"{ap['active_path_big_ms']:.2f} ms vs 50-node session "
            f"{ap['active_path_small_ms']:.2f} ms -> ratio {ap['ratio']:.2f} (target <= 1.5)"
        )
        so = bench_step_overhead(url, turns=5 if quick else 20)
        lines.append(
            f"durable turn step: {so['durable_step_ms']:.1f} ms vs bare LLM call "
            f"{so['llm_call_ms']:.1f} ms -> overhead {so['overhead_ms']:.1f} ms "
            f"({so['overhead_ratio'] * 100:.1f}% of the LLM latency)"
        )
    return "\n".join(lines)
