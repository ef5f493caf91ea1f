"""Small builders shared by the store conformance tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import func, select

from lash_tasks.machine import (
    ClaimCompletion,
    ClaimRef,
    CommitDraft,
    CommitResult,
    Fence,
    GraphAppend,
    GraphUnchanged,
    Message,
    ModelSpec,
    Node,
    QueuedWorkDraft,
    SessionPolicy,
    TurnState,
)
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputDraft, Lease, PendingInput
from lash_tasks.store.store import Store

T = TypeVar("T")

POLICY = SessionPolicy(model=ModelSpec(id="test-model"))
CREATED_AT = "2025-01-01T00:00:00Z"
# Long enough for the few statements a test runs under it, short enough to wait out.
SHORT_TTL_MS = 250


def new_session(store: Store, session_id: str = "s1") -> str:
    store.sessions.create(session_id, POLICY)
    return session_id


def take_lease(
    store: Store,
    session_id: str,
    owner_id: str = "worker-a",
    incarnation_id: str = "inc-1",
    ttl_ms: int = 30_000,
) -> Lease:
    lease = store.leases.try_claim(session_id, owner_id, incarnation_id, ttl_ms=ttl_ms)
    assert isinstance(lease, Lease), lease
    return lease


def expire_soon(store: Store, session_id: str, owner_id: str = "worker-a") -> Lease:
    """A lease that is dead a moment after this returns (short ttl, then a short sleep)."""
    lease = take_lease(store, session_id, owner_id, ttl_ms=SHORT_TTL_MS)
    wait_past_expiry()
    return lease


def wait_past_expiry() -> None:
    time.sleep(SHORT_TTL_MS / 1000 + 0.1)


def msg(node_id: str, parent: str | None, text: str = "hi", role: str = "user") -> Node:
    message = Message(role=role, text=text)  # type: ignore[arg-type]
    return Node(node_id, parent, "message", message.to_json(), CREATED_AT)


def append(
    session_id: str,
    head: int,
    fence: Fence | None,
    nodes: Sequence[Node],
    **kwargs: Any,
) -> CommitDraft:
    """A commit draft appending `nodes` (the last one becomes the leaf)."""
    leaf = nodes[-1].node_id if nodes else None
    return CommitDraft(
        session_id=session_id,
        expected_head_revision=head,
        fence=fence,
        graph=GraphAppend(tuple(nodes), leaf),
        **kwargs,
    )


def unchanged(
    session_id: str, head: int, fence: Fence | None, leaf: str | None, **kwargs: Any
) -> CommitDraft:
    return CommitDraft(
        session_id=session_id,
        expected_head_revision=head,
        fence=fence,
        graph=GraphUnchanged(leaf),
        **kwargs,
    )


def commit_chain(store: Store, lease: Lease, *node_ids: str) -> CommitResult:
    """Append a linear chain of message nodes under the current leaf in one commit."""
    record = store.sessions.record(lease.session_id)
    parent = record.leaf_node_id
    nodes = []
    for node_id in node_ids:
        nodes.append(msg(node_id, parent, text=f"text of {node_id}"))
        parent = node_id
    return store.commits.commit(append(lease.session_id, record.head_revision, lease.fence, nodes))


def enqueue(
    store: Store,
    session_id: str,
    key: str,
    text: str = "hello",
    ingress: str = "next_turn",
) -> PendingInput:
    return store.inputs.enqueue(
        InputDraft(session_id, key, {"text": text}, ingress=ingress)  # type: ignore[arg-type]
    )


def command(key: str, reason: str = "test") -> QueuedWorkDraft:
    return QueuedWorkDraft(
        source_key=key,
        work_class="session_command",
        payloads=({"type": "session_command", "command": "refresh_tool_catalog", "r": reason},),
    )


def turn_work(
    key: str, slot: str = "exclusive", merge_key: str | None = None, delay_ms: int = 0
) -> QueuedWorkDraft:
    return QueuedWorkDraft(
        source_key=key,
        work_class="turn_work",
        payloads=({"type": "process_wake", "wake": key},),
        slot_policy=slot,  # type: ignore[arg-type]
        merge_key=merge_key,
        delay_ms=delay_ms,
    )


def completion(claim: Any) -> ClaimCompletion:
    return ClaimCompletion(claim.claim_id, claim.claim_token)


def start_turn(
    turn_id: str, input_claim_id: str | None = None, queue_claim_id: str | None = None
) -> TurnState:
    """A turn at its first step holding these claims (tokens are the completions' business)."""
    return TurnState(
        turn_id,
        input_claim=ClaimRef(input_claim_id, "") if input_claim_id else None,
        queue_claim=ClaimRef(queue_claim_id, "") if queue_claim_id else None,
    )


def states(store: Store, session_id: str) -> dict[str, str]:
    return {i.input_id: i.state for i in store.inputs.list_all(session_id)}


def node_ids(store: Store, session_id: str) -> set[str]:
    return set(store.sessions.load(session_id).graph.nodes)


def stamp_count(store: Store, session_id: str) -> int:
    return store.maintenance.count_rows("lash_turn_commits", session_id)


def session_row_counts(store: Store, session_id: str) -> dict[str, int]:
    """Rows per table that belong to `session_id`, queued work items and processes included."""
    counts = {
        table.name: store.maintenance.count_rows(table.name, session_id)
        for table in t.SESSION_TABLES
    }
    counts["lash_processes"] = store.maintenance.count_rows("lash_processes", session_id)
    items = t.queued_work_items
    with store.database.engine.connect() as conn:
        counts["lash_queued_work_items"] = int(
            conn.execute(
                select(func.count())
                .select_from(
                    items.join(t.queued_work, items.c.batch_id == t.queued_work.c.batch_id)
                )
                .where(t.queued_work.c.session_id == session_id)
            ).scalar_one()
        )
        counts["lash_process_events"] = int(
            conn.execute(
                select(func.count())
                .select_from(
                    t.process_events.join(
                        t.processes, t.process_events.c.process_id == t.processes.c.process_id
                    )
                )
                .where(t.processes.c.session_id == session_id)
            ).scalar_one()
        )
    return counts


def race(workers: Sequence[Callable[[], T]], timeout: float = 20.0) -> list[T | BaseException]:
    """Run each callable on its own thread, released together; results or raised errors."""
    barrier = threading.Barrier(len(workers))

    def run(fn: Callable[[], T]) -> T | BaseException:
        barrier.wait(timeout)
        try:
            return fn()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        futures = [pool.submit(run, fn) for fn in workers]
        return [f.result(timeout=timeout) for f in futures]
