"""The one assembly path: policy, heal, trim, tool-surface restore, park/resume, history."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lash_tasks.machine import (
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    GraphUnchanged,
    ModelSpec,
    SessionPolicy,
    SessionSnapshot,
)
from lash_tasks.runtime.assembly import ParkedSession, assemble_runtime, resume
from lash_tasks.runtime.trace import MemoryTraceSink
from lash_tasks.store.records import FullGraph, Lease
from lash_tasks.store.store import Store
from tests.runtime.conftest import Harness


def _corrupt_leaf(store: Store, session_id: str, leaf: str) -> None:
    """Point the stored leaf at a node id that does not exist (raw SQL, no revision bump)."""
    with store.database.engine.begin() as conn:
        conn.execute(
            text("UPDATE lash_sessions SET leaf_node_id = :leaf WHERE session_id = :sid"),
            {"leaf": leaf, "sid": session_id},
        )


def _branched(harness: Harness) -> tuple[str, dict[str, str]]:
    """Three turns where the third branches from the first answer: u2, a2 become orphans."""
    core, _ = harness.core()
    sid = harness.session()
    harness.turn(core, sid, "one")
    first = harness.store.sessions.load(sid).graph.active_path()
    harness.turn(core, sid, "two")
    second = harness.store.sessions.load(sid).graph.active_path()[2:]
    harness.turn(core, sid, "three", branch_from=first[1].node_id)
    ids = {
        "u1": first[0].node_id,
        "a1": first[1].node_id,
        "u2": second[0].node_id,
        "a2": second[1].node_id,
    }
    return sid, ids


def test_stored_policy_is_used_over_the_caller_policy(harness: Harness) -> None:
    """The session's persisted policy wins; the caller's only fills what is missing."""
    core, _ = harness.core()
    sid = harness.session(max_turns=5, system_prompt="be terse")
    caller = SessionPolicy(model=ModelSpec(id="other"), max_turns=9)
    runtime = assemble_runtime(core, sid, caller_policy=caller)
    assert runtime.policy.max_turns == 5
    assert runtime.policy.system_prompt == "be terse"
    assert runtime.policy.model.id == "scripted"


def test_orphaned_leaf_is_healed_and_park_commits_exactly_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaf naming a missing node heals to the last message node; park writes it once,
    as a replace_full commit (even with this core's rebuild cache warm)."""
    core, _ = harness.core()
    sid = harness.session()
    harness.turn(core, sid, "hello")
    before = harness.store.sessions.load(sid)
    last_message = before.graph.active_path()[-1].node_id
    revision = before.record.head_revision
    _corrupt_leaf(harness.store, sid, "no-such-node")

    runtime = assemble_runtime(core, sid)
    assert runtime.graph.leaf_node_id == last_message
    assert runtime.graph_replace_required is True
    assert [m.role for m in runtime.graph.active_messages()] == ["user", "assistant"]

    drafts: list[CommitDraft] = []
    real_commit = harness.store.commits.commit

    def spy(draft: CommitDraft) -> CommitResult:
        drafts.append(draft)
        return real_commit(draft)

    monkeypatch.setattr(harness.store.commits, "commit", spy)
    parked = runtime.park()
    assert parked == ParkedSession(sid, runtime.policy)
    assert [d.graph.kind for d in drafts] == ["replace_full"]
    after = harness.store.sessions.record(sid)
    assert after.head_revision == revision + 1
    assert after.leaf_node_id == last_message
    assert runtime.graph_replace_required is False
    assert sorted(harness.store.sessions.load(sid).graph.nodes) == sorted(before.graph.nodes)

    runtime.park()
    assert len(drafts) == 1
    assert harness.store.sessions.record(sid).head_revision == revision + 1
    assert harness.store.leases.state(sid)[0] is None


def test_park_of_an_untouched_runtime_never_bumps_the_revision(harness: Harness) -> None:
    """Parking a runtime that needs no rewrite commits nothing and takes no lease."""
    core, _ = harness.core()
    sid = harness.session()
    harness.turn(core, sid, "hello")
    revision = harness.store.sessions.record(sid).head_revision
    fence_before = harness.store.leases.state(sid)[1]
    runtime = assemble_runtime(core, sid)
    for _ in range(3):
        runtime.park()
    assert harness.store.sessions.record(sid).head_revision == revision
    assert harness.store.leases.state(sid)[1] == fence_before


def test_heal_rewrite_keeps_orphaned_history(harness: Harness) -> None:
    """Healing under active_path_only never drops stored orphans: park rewrites the full graph."""
    sid, ids = _branched(harness)
    full_before = sorted(harness.store.sessions.load(sid).graph.nodes)
    _corrupt_leaf(harness.store, sid, "gone")
    core, _ = harness.core()
    runtime = assemble_runtime(core, sid)
    assert runtime.graph_replace_required is True
    runtime.park()
    assert sorted(harness.store.sessions.load(sid).graph.nodes) == full_before
    assert harness.store.sessions.load_node(sid, ids["u2"]) is not None


def test_step_after_heal_keeps_orphaned_history(harness: Harness) -> None:
    """A turn step that carries the heal rewrite still keeps every stored orphan."""
    sid, ids = _branched(harness)
    full_before = set(harness.store.sessions.load(sid).graph.nodes)
    _corrupt_leaf(harness.store, sid, "gone")
    core, _ = harness.core()
    harness.turn(core, sid, "four")
    stored = set(harness.store.sessions.load(sid).graph.nodes)
    assert full_before <= stored
    assert len(stored) == len(full_before) + 2
    assert harness.store.sessions.load_node(sid, ids["a2"]) is not None


def test_resume_under_active_path_only_loads_only_the_active_path(harness: Harness) -> None:
    """After branching, a resumed runtime holds leaf → root only, not the orphaned branch."""
    sid, ids = _branched(harness)
    core, _ = harness.core()
    full = harness.store.sessions.load(sid, FullGraph()).graph
    runtime = assemble_runtime(core, sid)
    parked = runtime.park()
    resumed = resume(core, parked)
    assert len(full) == 6
    assert len(resumed.graph) == 4
    assert set(resumed.graph.nodes) == {n.node_id for n in full.active_path()}
    assert ids["u2"] not in resumed.graph.nodes
    assert [m.text for m in resumed.graph.active_messages()] == [
        "one",
        "echo: one",
        "three",
        "echo: three",
    ]


def test_keep_all_residency_loads_the_full_graph(harness: Harness) -> None:
    """A keep_all session keeps orphans resident too."""
    core, _ = harness.core(residency="keep_all")
    sid = harness.session("s-keep", residency="keep_all")
    harness.turn(core, sid, "one")
    first_answer = harness.store.sessions.load(sid).graph.active_path()[1].node_id
    harness.turn(core, sid, "two")
    harness.turn(core, sid, "three", branch_from=first_answer)
    runtime = assemble_runtime(core, sid)
    assert len(runtime.graph) == 6
    assert len(runtime.graph.active_path()) == 4


def test_historic_orphan_is_readable_and_listed(harness: Harness) -> None:
    """get_historic_node finds an orphan in the store; orphaned_node_ids lists the branch."""
    sid, ids = _branched(harness)
    core, _ = harness.core()
    runtime = assemble_runtime(core, sid)
    assert ids["u2"] not in runtime.graph.nodes
    node = runtime.get_historic_node(ids["u2"])
    assert node is not None and node.message() is not None
    assert node.message().text == "two"  # type: ignore[union-attr]
    assert runtime.get_historic_node(ids["u1"]) is not None
    assert runtime.get_historic_node("never-existed") is None
    assert sorted(runtime.orphaned_node_ids()) == sorted([ids["u2"], ids["a2"]])


def test_branch_to_an_orphan_loads_its_ancestry(harness: Harness) -> None:
    """branch_to an orphan under active_path_only makes its path the resident graph."""
    sid, ids = _branched(harness)
    core, _ = harness.core()
    runtime = assemble_runtime(core, sid)
    runtime.branch_to(ids["a2"])
    assert runtime.graph.leaf_node_id == ids["a2"]
    assert [n.node_id for n in runtime.graph.active_path()] == [
        ids["u1"],
        ids["a1"],
        ids["u2"],
        ids["a2"],
    ]


def test_tool_surface_snapshot_is_restored_with_its_generation(harness: Harness) -> None:
    """A stored tool-surface snapshot (generation 7) is adopted by the rebuilt runtime."""
    core, _ = harness.core()
    sid = harness.session()
    tools = core.tools_factory()
    snapshot = tools.snapshot()
    snapshot["generation"] = 7
    snapshot["tools"] = [t for t in snapshot["tools"] if t["manifest"]["name"] == "calculator"]
    lease = harness.store.leases.try_claim(sid, "seeder", "inc", 30_000)
    assert isinstance(lease, Lease)
    harness.store.commits.commit(
        CommitDraft(
            session_id=sid,
            expected_head_revision=0,
            fence=lease.fence,
            graph=GraphUnchanged(None),
            active_turn=ClearActiveTurn(),
            snapshot=SessionSnapshot(tool_state=snapshot, tool_state_generation=7),
            release_lease=True,
        )
    )
    runtime = assemble_runtime(core, sid)
    assert runtime.tools.generation == 7
    assert runtime.tools.tool_names() == ["calculator"]


def test_refresh_tool_catalog_command_bumps_the_restored_generation(harness: Harness) -> None:
    """Each refresh_tool_catalog command commits generation+1, and rebuilds adopt it."""
    from lash_tasks.machine import QueuedWorkDraft
    from lash_tasks.runtime.step_driver import run_step

    core, _ = harness.core()
    sid = harness.session()
    for n in (1, 2):
        harness.store.queue.enqueue(
            sid,
            QueuedWorkDraft(
                f"refresh-{n}", "session_command", ({"command": "refresh_tool_catalog"},)
            ),
        )
        assert run_step(core, sid).status == "command"
        assert harness.store.sessions.record(sid).tool_state_generation == n
        assert assemble_runtime(core, sid).tools.generation == n
    assert run_step(core, sid).status == "idle"


def test_session_restored_is_traced(harness: Harness) -> None:
    """Every assembly emits one session_restored record naming the session and purpose."""
    sink = MemoryTraceSink()
    core, _ = harness.core(sink=sink)
    sid = harness.session()
    runtime = assemble_runtime(core, sid, purpose="open")
    resume(core, runtime.park())
    restored = [r for r in sink.records if r["type"] == "session_restored"]
    assert [r["purpose"] for r in restored] == ["open", "resume"]
    assert all(r["context"]["session_id"] == sid for r in restored)
    assert restored[0]["head_revision"] == 0
    assert runtime.events == ["session_restored"]


def test_unconfigured_session_is_filled_from_the_caller_policy(harness: Harness) -> None:
    """A session created without a policy gets the caller's on first open, persisted."""
    core, _ = harness.core()
    harness.store.sessions.create("s-empty", None)
    caller = SessionPolicy(model=ModelSpec(id="from-caller"), max_turns=7)
    runtime = assemble_runtime(core, "s-empty", caller_policy=caller)
    assert runtime.policy == caller
    stored = harness.store.sessions.record("s-empty").policy
    assert stored == caller
    # Once filled, a later caller's policy no longer overrides it.
    other = SessionPolicy(model=ModelSpec(id="other"))
    assert assemble_runtime(core, "s-empty", caller_policy=other).policy == caller


def test_unconfigured_session_without_caller_policy_uses_the_core_default(
    harness: Harness,
) -> None:
    """With no caller policy, an unconfigured session gets the core's default model spec."""
    core, _ = harness.core()
    harness.store.sessions.create("s-default", None)
    runtime = assemble_runtime(core, "s-default")
    assert runtime.policy == core.default_policy()
    assert harness.store.sessions.record("s-default").policy == core.default_policy()
