"""History: a step at a long active path, and the rebuild of a session with many orphans."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from lash_tasks.bench.inprocess import BENCH_MODEL, bench_core
from lash_tasks.machine import (
    ClearActiveTurn,
    CommitDraft,
    GraphReplaceFull,
    Message,
    Node,
    SessionPolicy,
)
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import ActivePath, Busy, InputDraft
from lash_tasks.store.store import Store


def build_branchy_graph(total: int, path_len: int, branches: int) -> tuple[list[Node], str]:
    """A trunk of `path_len` alternating user/assistant nodes (the active path) plus side
    branches up to `total` nodes."""
    now = datetime.now(UTC).isoformat()
    nodes: list[Node] = []
    parent: str | None = None
    for i in range(path_len):
        node_id = f"t{i}"
        message = Message("user" if i % 2 == 0 else "assistant", f"trunk {i}")
        nodes.append(Node(node_id, parent, "message", message.to_json(), now))
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


def seed_session(store: Store, session_id: str, nodes: list[Node], leaf: str) -> None:
    store.sessions.create(session_id, SessionPolicy(model=BENCH_MODEL))
    lease = store.leases.try_claim(session_id, "bench", "bench")
    assert not isinstance(lease, Busy)
    store.commits.commit(
        CommitDraft(
            session_id,
            0,
            lease.fence,
            GraphReplaceFull(tuple(nodes), leaf),
            active_turn=ClearActiveTurn(),
            release_lease=True,
        )
    )


def _median(fn: Callable[[], float], repeats: int) -> float:
    fn()  # warm caches and plans
    return statistics.median(fn() for _ in range(repeats))


def rebuild_ratio(url: str, repeats: int, total: int = 20_000) -> dict[str, Any]:
    """Active-path load of a `total`-node session (path of 50) vs a 50-node session."""
    store = Store.from_url(url)
    try:
        big, big_leaf = build_branchy_graph(total, 50, 40)
        small, small_leaf = build_branchy_graph(50, 50, 0)
        seed_session(store, "rebuild-big", big, big_leaf)
        seed_session(store, "rebuild-small", small, small_leaf)
        _analyze(store)
        assert len(store.sessions.load("rebuild-big", ActivePath()).graph) == 50

        def load(session_id: str) -> Callable[[], float]:
            def run() -> float:
                started = time.perf_counter()
                store.sessions.load(session_id, ActivePath())
                return time.perf_counter() - started

            return run

        big_s = _median(load("rebuild-big"), repeats)
        small_s = _median(load("rebuild-small"), repeats)
    finally:
        store.close()
    return {
        "big_nodes": total,
        "rebuild_big_ms": big_s * 1000,
        "rebuild_small_ms": small_s * 1000,
        "ratio": big_s / small_s,
    }


def long_path_step_ratio(url: str, repeats: int) -> dict[str, Any]:
    """A one-step turn on a session whose active path is 2,000 nodes vs one of 20 nodes.

    The worker's rebuild cache must hit (the same worker ran the previous step), so the
    difference left is the prompt itself, which is O(path) by nature.
    """
    with bench_core(url) as (core, store):
        for session_id, length in (("path-long", 2000), ("path-short", 20)):
            nodes, leaf = build_branchy_graph(length, length, 0)
            seed_session(store, session_id, nodes, leaf)
        _analyze(store)

        def step(session_id: str) -> Callable[[], float]:
            def run() -> float:
                store.inputs.enqueue(InputDraft(session_id, uuid.uuid4().hex, {"text": "hi"}))
                started = time.perf_counter()
                result = run_step(core, session_id)
                elapsed = time.perf_counter() - started
                assert result.status == "finished", result
                return elapsed

            return run

        long_s = _median(step("path-long"), repeats)
        short_s = _median(step("path-short"), repeats)
        hits = core.cache.hits
    return {
        "step_long_path_ms": long_s * 1000,
        "step_short_path_ms": short_s * 1000,
        "ratio": long_s / short_s,
        "cache_hits": hits,
    }


def _analyze(store: Store) -> None:
    if store.database.dialect.name == "postgresql":
        with store.database.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
