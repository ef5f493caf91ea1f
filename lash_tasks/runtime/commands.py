"""Session commands: run first, one per fenced commit, and never become prompt text."""

from __future__ import annotations

import logging

from lash_tasks.machine import (
    ClaimCompletion,
    CommitDraft,
    Fence,
    GraphAppend,
    GraphUnchanged,
    NodeDraft,
    SessionSnapshot,
)
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.lease_keeper import LeaseKeeper
from lash_tasks.store.records import QueueClaim

log = logging.getLogger(__name__)
KNOWN_COMMANDS = ("refresh_tool_catalog", "reset", "noop")


def run_session_command(
    core: LashCore, runtime: SessionRuntime, fence: Fence, claim: QueueClaim, keeper: LeaseKeeper
) -> int:
    """Apply the claimed command and settle it in one commit; returns the new revision."""
    batch = claim.batches[0]
    payload = batch.payloads[0] if batch.payloads else {}
    command = str(payload.get("command", ""))
    snapshot = SessionSnapshot()
    graph: GraphUnchanged | GraphAppend = GraphUnchanged(runtime.graph.leaf_node_id)
    if command == "refresh_tool_catalog":
        fresh = core.tools_factory()
        generation = runtime.tools.generation + 1
        state = {**fresh.snapshot(), "generation": generation}
        snapshot = SessionSnapshot(tool_state=state, tool_state_generation=generation)
    elif command == "reset":
        # The next input starts a new root; the old conversation becomes orphaned history.
        graph = GraphUnchanged(None)
    elif command != "noop":
        log.warning("session %s: unknown session command %r settled", runtime.session_id, command)
        # Named after the revision this commit creates, which no later commit repeats: the
        # batch id returns when its source key is reused after vacuum.
        node = runtime.graph.append(
            NodeDraft(
                f"cmd.{runtime.head_revision + 1}.{batch.batch_id}",
                "event",
                {"type": "unknown_command", "command": command},
                "",
            )
        )
        graph = GraphAppend((node,), node.node_id)
    keeper.check()
    result = core.require_store().commits.commit(
        CommitDraft(
            session_id=runtime.session_id,
            expected_head_revision=runtime.head_revision,
            fence=fence,
            graph=graph,
            snapshot=snapshot,
            queue_completions=(ClaimCompletion(claim.claim_id, claim.claim_token),),
            carries_claimed_content=True,
            release_lease=True,
        )
    )
    core.cache.forget(runtime.session_id)
    return result.head_revision
