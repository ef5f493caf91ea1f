"""Maintenance jobs as a worker runs them (`run_job` over real resources), on both dialects:
journal retention, orphan paging and the database clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.runtime.step import run_step
from lash_tasks.settings import Settings
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputDraft
from lash_tasks.store.sql_store import SqlStore
from lash_tasks.worker.maintenance import run_job
from lash_tasks.worker.resources import Resources, build_resources
from tests.store_conformance.support import append, commit_chain, msg, take_lease

POLICY = SessionPolicy(model=ModelSpec(id="scripted-echo"))
KEEP = SessionPolicy(model=ModelSpec(id="scripted-echo"), orphan_policy="keep_history")


@pytest.fixture
def make_res(store: SqlStore, tmp_path: Path) -> Iterator[Callable[[int], Resources]]:
    """A worker's resources over the `store` fixture's database, by orphan retention."""
    opened: list[Resources] = []

    def make(orphan_retention_s: int) -> Resources:
        settings = Settings.from_env(
            {
                "LASH_HOME": str(tmp_path / "home"),
                "LASH_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
                "LASH_ORPHAN_RETENTION_S": str(orphan_retention_s),
            }
        )
        opened.append(build_resources(settings))
        return opened[-1]

    yield make
    for resources in opened:
        resources.close()


@pytest.fixture
def res(make_res: Callable[[int], Resources]) -> Resources:
    """Resources with an orphan retention of one hour."""
    return make_res(3600)


def _with_orphans(store: SqlStore, sid: str) -> None:
    """root -> a1 -> a2 (orphans), root -> b1 (active); node created_at strings say 2025."""
    store.create_session(sid, POLICY)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "root", "a1", "a2")
    store.commit(append(sid, 1, lease.fence, [msg("b1", "root")], release_lease=True))


def _age_nodes(store: SqlStore, sid: str, by_ms: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(t.graph_nodes)
            .where(t.graph_nodes.c.session_id == sid)
            .values(created_ms=t.graph_nodes.c.created_ms - by_ms)
        )


def test_vacuum_job_keeps_the_journal_of_a_turn_committed_within_a_lease_ttl(
    res: Resources,
) -> None:
    """Right after a turn commits, vacuum leaves its journal for any stale worker to replay."""
    store = res.store
    store.create_session("s1", POLICY)
    store.enqueue_input(InputDraft("s1", "k1", {"text": "hello"}))
    assert run_step(res.core, "s1").status == "finished"
    journaled = store.journal_entries("s1")
    assert len(journaled) == 1

    report = run_job(res, None, "vacuum", "slot-1")
    assert report["removed_journal_rows"] == 0
    assert store.journal_entries("s1") == journaled
