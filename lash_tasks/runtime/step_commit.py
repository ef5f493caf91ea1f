"""A step's closing commit, spelled as the store's `CommitDraft`: a mechanical translation of
the protocol's `StepPlan` (which decided everything in it) onto the session's graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lash_tasks.machine import (
    ClaimCompletion,
    ClaimRef,
    ClearActiveTurn,
    CommitDraft,
    Fence,
    GraphAppend,
    GraphDelta,
    GraphReplaceFull,
    Node,
    NodeDraft,
    SessionGraph,
    SessionSnapshot,
    TurnStamp,
)
from lash_tasks.machine.protocol import StepPlan
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.store.records import FullGraph


def place(graph: SessionGraph, drafts: Sequence[NodeDraft]) -> tuple[Node, ...]:
    """The drafts as nodes appended under the graph's leaf, one after the other; the graph
    itself is left as it is until the commit succeeds."""
    nodes: list[Node] = []
    parent = graph.leaf_node_id
    for draft in drafts:
        nodes.append(Node(draft.node_id, parent, draft.kind, draft.payload, draft.created_at))
        parent = draft.node_id
    return tuple(nodes)


def adopt(graph: SessionGraph, nodes: Sequence[Node]) -> None:
    """After the commit: the runtime's graph holds the committed nodes and their leaf."""
    for node in nodes:
        graph.nodes[node.node_id] = node
    if nodes:
        graph.leaf_node_id = nodes[-1].node_id


def commit_draft(
    runtime: SessionRuntime,
    fence: Fence,
    plan: StepPlan,
    nodes: tuple[Node, ...],
    events: tuple[dict[str, Any], ...] = (),
) -> CommitDraft:
    leaf = nodes[-1].node_id if nodes else runtime.graph.leaf_node_id
    graph: GraphDelta = GraphAppend(nodes, leaf)
    if runtime.graph_replace_required:
        graph = GraphReplaceFull(_full_nodes(runtime, nodes), leaf)
    snapshot = SessionSnapshot(
        tool_state=_tool_state_if_changed(runtime),
        tool_state_generation=runtime.tools.generation,
        usage_delta=(plan.usage.input_tokens, plan.usage.output_tokens),
    )
    draft = CommitDraft(
        session_id=runtime.session_id,
        expected_head_revision=runtime.head_revision,
        fence=fence,
        graph=graph,
        active_turn=plan.next_turn if plan.next_turn is not None else ClearActiveTurn(),
        snapshot=snapshot,
        committed_attachment_ids=plan.attachment_ids,
        events=events,
        release_lease=True,
    )
    if plan.next_turn is not None:
        return draft
    assert plan.result is not None and plan.turn_commit_hash is not None
    turn = plan.turn
    return CommitDraft(
        **{
            **draft.__dict__,
            "input_completions": _completion(turn.input_claim),
            "queue_completions": (
                _completion(turn.queue_claim) if plan.settles_queue_claim else ()
            ),
            "carries_claimed_content": True,
            "defer_active_inputs": True,
            "returned_input_ids": plan.returned_steer,
            "returned_batch_ids": plan.returned_wakes,
            "turn_stamp": TurnStamp(turn.turn_id, plan.turn_commit_hash, plan.result),
            "replies": plan.replies,
        }
    )


def _full_nodes(runtime: SessionRuntime, new: tuple[Node, ...]) -> tuple[Node, ...]:
    """The whole stored graph, the healed runtime's nodes and this step's. A runtime trimmed
    to its active path must not rewrite the graph from what it holds: that would delete
    every orphan."""
    store = runtime.core.require_store()
    nodes = dict(store.sessions.load(runtime.session_id, FullGraph()).graph.nodes)
    for node in (*runtime.graph.nodes.values(), *new):
        nodes.setdefault(node.node_id, node)
    return tuple(nodes.values())


def _completion(claim: ClaimRef | None) -> tuple[ClaimCompletion, ...]:
    if claim is None or not claim.claim_token:
        return ()
    return (ClaimCompletion(claim.claim_id, claim.claim_token),)


def _tool_state_if_changed(runtime: SessionRuntime) -> dict[str, object] | None:
    if runtime.record.tool_state_generation == runtime.tools.generation and (
        runtime.record.tool_state is not None
    ):
        return None
    return runtime.tools.snapshot()
