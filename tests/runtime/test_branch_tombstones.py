"""A turn that branches into orphaned history keeps that history, whatever the orphan
job does while the turn runs (both dialects)."""

from __future__ import annotations

from typing import Any

import pytest

from lash_tasks.runtime.step_driver import run_step
from tests.runtime.conftest import Harness


def test_orphan_tombstoning_during_a_branched_turn_never_cuts_its_history(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orphan job runs while a turn that branched from an orphan calls the LLM: the
    branch point and its ancestors survive tombstoning and vacuum, and the transcript reads
    whole; the branch the turn left behind is what maintenance removes."""
    core, llm = harness.core()
    store = harness.store
    sid = harness.session()
    harness.turn(core, sid, "first")
    harness.turn(core, sid, "second")
    first_answer, _, second_answer = [
        n.node_id for n in store.sessions.load(sid).graph.active_path()
    ][1:]
    harness.turn(core, sid, "third", branch_from=first_answer)  # orphans "second" and its answer
    harness.enqueue(sid, "fourth", branch_from=second_answer)  # back into the orphans
    real_complete = core.llm.complete
    tombstoned: list[int] = []

    def racing_orphan_job(request: Any, **options: Any) -> Any:
        tombstoned.append(
            store.maintenance.tombstone_nodes(sid, store.sessions.orphaned_node_ids(sid))
        )
        return real_complete(request, **options)

    monkeypatch.setattr(core.llm, "complete", racing_orphan_job)
    result = run_step(core, sid)
    monkeypatch.undo()
    assert result.status == "finished"
    store.maintenance.vacuum()

    texts = [m.text for m in harness.messages(sid)]
    assert texts == ["first", "echo: first", "second", "echo: second", "fourth", "echo: fourth"]
    assert tombstoned == [0]
    left_behind = store.sessions.orphaned_node_ids(sid)
    assert [store.sessions.load_node(sid, n).payload["text"] for n in left_behind] == [  # type: ignore[union-attr]
        "third",
        "echo: third",
    ]
    assert store.maintenance.tombstone_nodes(sid, left_behind) == 2
    assert store.maintenance.vacuum().removed_nodes == 2
    assert [m.text for m in harness.messages(sid)] == texts
    assert llm.call_count == 4
