"""Build and apply the step's commit: progress (turn continues) or final (turn ends)."""

from __future__ import annotations

from lash_tasks.machine import (
    ActiveTurn,
    ClaimCompletion,
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    Fence,
    GraphAppend,
    GraphDelta,
    GraphReplaceFull,
    Node,
    SessionSnapshot,
    TurnStamp,
    turn_commit_hash,
)
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.runtime.iteration import Iteration
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.turn_start import StepWork
from lash_tasks.store.records import FullGraph


def commit_step(
    core: LashCore, runtime: SessionRuntime, fence: Fence, work: StepWork, iteration: Iteration
) -> CommitResult:
    store = core.require_store()
    graph: GraphDelta
    if runtime.graph_replace_required:
        graph = GraphReplaceFull(_full_nodes(core, runtime), runtime.graph.leaf_node_id)
    else:
        graph = GraphAppend(tuple(iteration.nodes), runtime.graph.leaf_node_id)
    snapshot = SessionSnapshot(
        tool_state=_tool_state_if_changed(runtime),
        tool_state_generation=runtime.tools.generation,
        usage_delta=(iteration.usage.input_tokens, iteration.usage.output_tokens),
    )
    attachment_ids = _referenced_attachments(iteration)
    if iteration.outcome is None:
        draft = CommitDraft(
            session_id=runtime.session_id,
            expected_head_revision=runtime.head_revision,
            fence=fence,
            graph=graph,
            active_turn=ActiveTurn(
                turn_id=work.turn_id,
                step_index=work.step_index + 1,
                input_claim_id=work.input_claim_id,
                queue_claim_id=work.queue_claim_id,
                state=work.claim_state(),
            ),
            snapshot=snapshot,
            committed_attachment_ids=attachment_ids,
            release_lease=True,
        )
    else:
        result = {
            "turn_id": work.turn_id,
            "outcome": iteration.outcome.to_json(),
            "input_ids": list(work.input_ids),
            "batch_ids": list(work.batch_ids),
            "steps": work.step_index + 1,
        }
        draft = CommitDraft(
            session_id=runtime.session_id,
            expected_head_revision=runtime.head_revision,
            fence=fence,
            graph=graph,
            active_turn=ClearActiveTurn(),
            snapshot=snapshot,
            input_completions=_completion(work.input_claim_id, work.input_claim_token),
            queue_completions=_completion(work.queue_claim_id, work.queue_claim_token),
            carries_claimed_content=True,
            defer_active_inputs=True,
            returned_input_ids=tuple(iteration.returned_input_ids),
            committed_attachment_ids=attachment_ids,
            release_lease=True,
        )
        digest = turn_commit_hash({"commit": draft.hashable_content(), "result": result})
        draft = CommitDraft(
            **{**draft.__dict__, "turn_stamp": TurnStamp(work.turn_id, digest, result)}
        )
    committed = store.commits.commit(draft)
    runtime.head_revision = committed.head_revision
    runtime.graph_replace_required = False
    core.tracer.emit(
        "turn_completed" if iteration.outcome is not None else "turn_step_committed",
        runtime.session_id,
        work.turn_id,
        head_revision=committed.head_revision,
        usage=iteration.usage.to_json(),
    )
    return committed


def _referenced_attachments(iteration: Iteration) -> tuple[str, ...]:
    """Every attachment this step's nodes name (user inputs, tool results): the commit that
    writes a reference into the graph is the one that stamps its manifest row."""
    ids = list(iteration.attachment_ids)
    for node in iteration.nodes:
        message = node.message()
        if message is not None:
            ids.extend(message.attachments)
    return tuple(dict.fromkeys(ids))


def _full_nodes(core: LashCore, runtime: SessionRuntime) -> tuple[Node, ...]:
    """The whole stored graph plus this step's nodes. A runtime trimmed to its active path
    must not rewrite the graph from what it holds: that would delete every orphan."""
    stored = core.require_store().sessions.load(runtime.session_id, FullGraph()).graph.nodes
    nodes = dict(stored)
    for node in runtime.graph.nodes.values():
        nodes.setdefault(node.node_id, node)
    return tuple(nodes.values())


def _completion(claim_id: str | None, token: str | None) -> tuple[ClaimCompletion, ...]:
    if claim_id is None or token is None:
        return ()
    return (ClaimCompletion(claim_id, token),)


def _tool_state_if_changed(runtime: SessionRuntime) -> dict[str, object] | None:
    if runtime.record.tool_state_generation == runtime.tools.generation and (
        runtime.record.tool_state is not None
    ):
        return None
    return runtime.tools.snapshot()
