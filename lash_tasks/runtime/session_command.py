"""Applying a claimed session command: the protocol's `plan_command` decides, this builds the
command's commit (one per command, settling its claim)."""

from __future__ import annotations

import logging

from lash_tasks.machine import (
    ClaimCompletion,
    CommitDraft,
    Fence,
    GraphAppend,
    GraphDelta,
    GraphUnchanged,
    SessionSnapshot,
)
from lash_tasks.machine.session_commands import plan_command
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.runtime.step_commit import place
from lash_tasks.store.records import QueueClaim

log = logging.getLogger(__name__)


def command_draft(runtime: SessionRuntime, fence: Fence, claim: QueueClaim) -> CommitDraft:
    batch = claim.batches[0]
    payload = batch.payloads[0] if batch.payloads else {}
    plan = plan_command(payload, batch_id=batch.batch_id, next_revision=runtime.head_revision + 1)
    snapshot = SessionSnapshot()
    graph: GraphDelta = GraphUnchanged(runtime.graph.leaf_node_id)
    if plan.refresh_tools:
        fresh = runtime.core.tools_factory()
        generation = runtime.tools.generation + 1
        state = {**fresh.snapshot(), "generation": generation}
        snapshot = SessionSnapshot(tool_state=state, tool_state_generation=generation)
    elif plan.reset:
        graph = GraphUnchanged(None)
    elif plan.record is not None:
        log.warning(
            "session %s: unknown session command %r settled", runtime.session_id, plan.command
        )
        nodes = place(runtime.graph, [plan.record])
        graph = GraphAppend(nodes, nodes[-1].node_id)
    return CommitDraft(
        session_id=runtime.session_id,
        expected_head_revision=runtime.head_revision,
        fence=fence,
        graph=graph,
        snapshot=snapshot,
        queue_completions=(ClaimCompletion(claim.claim_id, claim.claim_token),),
        carries_claimed_content=True,
        release_lease=True,
    )
