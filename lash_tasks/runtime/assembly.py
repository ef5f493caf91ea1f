"""The one assembly path: every runtime (fresh open, worker rebuild, child session,
resume) is built here, so a worker rebuild cannot drift from the live open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lash_tasks.errors import LeaseBusy, MissingModelSpec, NodeNotFound
from lash_tasks.machine import (
    ClearActiveTurn,
    CommitDraft,
    GraphReplaceFull,
    KeepActiveTurn,
    Node,
    SessionGraph,
    SessionPolicy,
    TurnState,
)
from lash_tasks.providers.llm_provider import LlmProvider
from lash_tasks.providers.registry import Unavailable
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.store.records import ActivePath, Busy, FullGraph, LoadedSession, SessionRecord
from lash_tasks.tools.registry import ToolRegistry

Purpose = Literal["open", "rebuild", "child", "resume"]


@dataclass
class SessionRuntime:
    """A rehydrated working copy of one session. The store holds the truth."""

    core: LashCore
    session_id: str
    policy: SessionPolicy
    graph: SessionGraph
    head_revision: int
    graph_replace_required: bool
    tools: ToolRegistry
    plugin_snapshot: dict[str, Any] | None
    active_turn: TurnState | None
    record: SessionRecord
    # The LLM provider the session named, or why this worker cannot serve it.
    llm: LlmProvider | Unavailable
    events: list[str] = field(default_factory=list)

    def get_historic_node(self, node_id: str) -> Node | None:
        """A node by id: the resident graph first, then the store (orphans included)."""
        node = self.graph.nodes.get(node_id)
        if node is not None:
            return node
        if self.core.store is None:
            return None
        return self.core.store.sessions.load_node(self.session_id, node_id)

    def orphaned_node_ids(self) -> list[str]:
        """Stored nodes off the active path (reads the full graph from the store)."""
        if self.core.store is None:
            return self.graph.orphaned_node_ids()
        return self.core.store.sessions.orphaned_node_ids(self.session_id)

    def branch_to(self, node_id: str) -> None:
        """Move the leaf to any stored node. Under active_path_only, load its ancestry."""
        if node_id in self.graph.nodes:
            self.graph.branch_to(node_id)
            return
        store = self.core.require_store()
        if store.sessions.load_node(self.session_id, node_id) is None:
            raise NodeNotFound(f"cannot branch to unknown node {node_id!r}", node_id=node_id)
        loaded = store.sessions.load(self.session_id, ActivePath(leaf=node_id))
        if self.policy.residency == "active_path_only":
            self.graph = loaded.graph
        else:
            for node in loaded.graph.nodes.values():
                self.graph.nodes.setdefault(node.node_id, node)
            self.graph.branch_to(node_id)

    def park(self) -> ParkedSession:
        """Flush if needed and drop the runtime, keeping only a handle.

        Commits only when the graph needs a full rewrite (healed) — never a spurious
        revision bump that would disturb other writers' compare-and-set.
        """
        store = self.core.require_store()
        if self.graph_replace_required:
            lease = store.leases.try_claim(
                self.session_id,
                self.core.owner_id,
                self.core.incarnation_id,
                self.core.lease.ttl_ms,
            )
            if isinstance(lease, Busy):
                raise LeaseBusy(
                    f"session {self.session_id!r} is busy; cannot park now",
                    retry_after_ms=lease.retry_after_ms,
                )
            full = store.sessions.load(self.session_id, FullGraph()).graph
            full.leaf_node_id = self.graph.leaf_node_id
            result = store.commits.commit(
                CommitDraft(
                    session_id=self.session_id,
                    expected_head_revision=self.head_revision,
                    fence=lease.fence,
                    graph=GraphReplaceFull(tuple(full.nodes.values()), full.leaf_node_id),
                    active_turn=KeepActiveTurn() if self.active_turn else ClearActiveTurn(),
                    release_lease=True,
                )
            )
            self.head_revision = result.head_revision
            self.graph_replace_required = False
        return ParkedSession(self.session_id, self.policy)


@dataclass(frozen=True)
class ParkedSession:
    session_id: str
    policy: SessionPolicy


def assemble_runtime(
    core: LashCore,
    session_id: str,
    *,
    caller_policy: SessionPolicy | None = None,
    purpose: Purpose = "open",
) -> SessionRuntime:
    """Load a session and build its runtime: for every caller but the step, which reads the
    same rows inside its open transaction and calls `build_runtime` itself."""
    store = core.require_store()
    record = store.sessions.record(session_id)
    if record.policy is None:
        policy = caller_policy or core.default_policy()
        if policy is None:
            raise MissingModelSpec(f"session {session_id!r} has no model spec and none was given")
        record = store.sessions.fill_policy(session_id, policy)
    assert record.policy is not None
    return build_runtime(core, _load(core, record, record.policy.residency, purpose), purpose)


def build_runtime(core: LashCore, loaded: LoadedSession, purpose: Purpose) -> SessionRuntime:
    """Heal, trim, restore: the same steps whoever asks for a runtime (the one assembly
    path: a worker rebuild cannot drift from the live open)."""
    record = loaded.record
    policy = record.policy
    if policy is None:
        raise MissingModelSpec(f"session {record.session_id!r} has no model spec")
    graph = loaded.graph
    # Heal before trimming, or the path to heal from is gone.
    replace_required = graph.heal_orphaned_leaf()
    if policy.residency == "active_path_only":
        graph = graph.trimmed_to_active_path()
    tools = core.tools_factory()
    if record.tool_state is not None:
        tools.restore(record.tool_state)
    elif policy.tools is not None:
        tools.limit_to(policy.tools)
    runtime = SessionRuntime(
        core=core,
        session_id=record.session_id,
        policy=policy,
        graph=graph,
        head_revision=record.head_revision,
        graph_replace_required=replace_required,
        tools=tools,
        plugin_snapshot=record.plugin_snapshot,
        active_turn=loaded.active_turn,
        record=record,
        llm=core.llm_providers.resolve(policy.provider),
    )
    runtime.events.append("session_restored")
    core.tracer.emit(
        "session_restored",
        record.session_id,
        purpose=purpose,
        head_revision=runtime.head_revision,
        resident_nodes=len(graph),
        healed=replace_required,
    )
    return runtime


def resume(core: LashCore, parked: ParkedSession) -> SessionRuntime:
    return assemble_runtime(core, parked.session_id, caller_policy=parked.policy, purpose="resume")


def _load(core: LashCore, record: SessionRecord, residency: str, purpose: Purpose) -> LoadedSession:
    store = core.require_store()
    if residency != "active_path_only":
        return store.sessions.load(record.session_id, FullGraph())
    loaded = store.sessions.load(record.session_id, ActivePath())
    stored_leaf = loaded.record.leaf_node_id
    if stored_leaf is not None and not loaded.graph.nodes and purpose != "resume":
        # The persisted leaf names a missing node: only the full graph can heal it.
        # resume() never falls back: under active_path_only it must not load everything.
        loaded = store.sessions.load(record.session_id, FullGraph())
    return loaded
