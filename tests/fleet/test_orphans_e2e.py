"""Branching orphans the old branch; tombstone + vacuum remove it, the active path stays."""

from __future__ import annotations

import pytest

from lash_tasks.runtime.assembly import assemble_runtime
from lash_tasks.worker.resources import build_resources
from tests.fleet.harness import Fleet, calc_rules, calc_transcript, transcript_pairs

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]


def test_branch_orphans_are_readable_until_tombstoned_and_vacuumed(fleet: Fleet) -> None:
    """enqueue_turn(branch_from=...) orphans a turn; maintenance deletes exactly those rows."""
    fleet.extra_env["LASH_SCRIPTED_RULES"] = calc_rules()
    worker = fleet.start_worker("w0", concurrency=2, LASH_ORPHAN_RETENTION_S="0")
    worker.wait_ready()
    client = fleet.client()
    app = fleet.publisher()
    sid = "branchy"
    client.create_session(sid)

    def converse(text: str, **options: str) -> None:
        answer = client.wait_for_input(sid, client.enqueue_turn(sid, text, **options), timeout=30)
        assert answer.state == "completed" and answer.text == "done: 42"

    converse("calc first")
    converse("calc second")
    before = client.session_view(sid).transcript
    assert [n.get("text") for n in before if n["kind"] == "message"][4] == "calc second"
    branch_point = before[3]["node_id"]  # the answer to "calc first"
    orphans = [n["node_id"] for n in before[4:]]
    assert len(orphans) == 4

    converse("calc third", branch_from=branch_point)
    assert transcript_pairs(client, sid) == calc_transcript(["calc first", "calc third"])
    active = [n["node_id"] for n in client.session_view(sid).transcript]
    assert active[:4] == [n["node_id"] for n in before[:4]]
    assert client.store.maintenance.count_rows("lash_graph_nodes", sid) == 12
    assert sorted(client.store.sessions.orphaned_node_ids(sid)) == sorted(orphans)

    # Before maintenance the orphans stay readable, through a runtime built like a worker's.
    resources = build_resources(fleet.settings())
    try:
        runtime = assemble_runtime(resources.core, sid, purpose="rebuild")
        assert not set(orphans) & set(runtime.graph.nodes)  # not resident: active path only
        historic = [runtime.get_historic_node(node_id) for node_id in orphans]
        assert [n.node_id for n in historic if n is not None] == orphans
        assert historic[0] is not None and historic[0].payload["text"] == "calc second"
    finally:
        resources.close()

    tombstoned = app.send_task(
        "lash.maintenance.tombstone_orphans", kwargs={"slot": "orphans-e2e-1"}
    ).get(timeout=30)
    assert tombstoned["tombstoned_nodes"] == 4, tombstoned
    assert all(client.store.sessions.load_node(sid, node_id) is None for node_id in orphans)
    assert (
        client.store.maintenance.count_rows("lash_graph_nodes", sid) == 12
    )  # hidden, not yet deleted

    vacuumed = app.send_task("lash.maintenance.vacuum", kwargs={"slot": "orphans-e2e-1"}).get(
        timeout=30
    )
    assert vacuumed["removed_nodes"] == 4, vacuumed
    assert client.store.maintenance.count_rows("lash_graph_nodes", sid) == 8
    assert client.store.sessions.orphaned_node_ids(sid) == []
    assert all(client.store.sessions.load_node(sid, node_id) is not None for node_id in active)
    assert transcript_pairs(client, sid) == calc_transcript(["calc first", "calc third"])

    resources = build_resources(fleet.settings())
    try:
        runtime = assemble_runtime(resources.core, sid, purpose="rebuild")
        assert all(runtime.get_historic_node(node_id) is None for node_id in orphans)
        assert set(runtime.graph.nodes) == set(active)
    finally:
        resources.close()

    # The session goes on from the intact active path.
    converse("calc fourth")
    assert transcript_pairs(client, sid) == calc_transcript(
        ["calc first", "calc third", "calc fourth"]
    )
    assert client.store.maintenance.count_rows("lash_graph_nodes", sid) == 12
    app.close()
    client.close()
