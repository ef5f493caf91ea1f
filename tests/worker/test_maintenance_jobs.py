"""Maintenance jobs as a worker runs them (`run_job` over real resources), on both dialects:
journal retention, orphan paging and the database clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.settings import Settings
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputDraft
from lash_tasks.store.store import Store
from lash_tasks.worker import maintenance
from lash_tasks.worker.maintenance import run_job
from lash_tasks.worker.resources import Resources, build_resources
from tests.store_conformance.support import append, commit_chain, msg, take_lease

POLICY = SessionPolicy(model=ModelSpec(id="scripted-echo"))
KEEP = SessionPolicy(model=ModelSpec(id="scripted-echo"), orphan_policy="keep_history")


@pytest.fixture
def make_res(store: Store, tmp_path: Path) -> Iterator[Callable[[int], Resources]]:
    """A worker's resources over the `store` fixture's database, by orphan retention."""
    opened: list[Resources] = []

    def make(orphan_retention_s: int) -> Resources:
        settings = Settings.from_env(
            {
                "LASH_HOME": str(tmp_path / "home"),
                "LASH_DATABASE_URL": store.database.engine.url.render_as_string(
                    hide_password=False
                ),
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


def _with_orphans(store: Store, sid: str) -> None:
    """root -> a1 -> a2 (orphans), root -> b1 (active); node created_at strings say 2025."""
    store.sessions.create(sid, POLICY)
    lease = take_lease(store, sid)
    commit_chain(store, lease, "root", "a1", "a2")
    store.commits.commit(append(sid, 1, lease.fence, [msg("b1", "root")], release_lease=True))


def _age_nodes(store: Store, sid: str, by_ms: int) -> None:
    with store.database.engine.begin() as conn:
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
    store.sessions.create("s1", POLICY)
    store.inputs.enqueue(InputDraft("s1", "k1", {"text": "hello"}))
    assert run_step(res.core, "s1").status == "finished"
    journaled = store.journal.entries("s1")
    assert len(journaled) == 1

    report = run_job(res, None, "vacuum", "slot-1")
    assert report["removed_journal_rows"] == 0
    assert store.journal.entries("s1") == journaled


@pytest.mark.timeout(90)
def test_orphan_job_reaches_every_changed_session_past_one_page(
    make_res: Callable[[int], Resources],
) -> None:
    """More changed sessions than one page (and than the old fixed cap of 1000): the most
    recently changed one still has its orphans tombstoned in the same run."""
    res = make_res(0)
    store = res.store
    now = store.database.db_now_ms()
    noise = [
        {
            "session_id": f"noise-{i:04d}",
            "head_revision": 0,
            "config": KEEP.model_dump(mode="json"),
            "input_tokens": 0,
            "output_tokens": 0,
            "graph_changed_at": now - 10_000 + i,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1000)  # the old fixed cap; more than one page too (checked below)
    ]
    with store.database.engine.begin() as conn:
        conn.execute(insert(t.sessions), noise)
    _with_orphans(store, "target")

    report = run_job(res, None, "tombstone_orphans", "slot-1")
    assert report["tombstoned_nodes"] == 2
    assert store.sessions.orphaned_node_ids("target") == []
    assert set(store.sessions.load("target").graph.nodes) == {"root", "b1"}
    assert report["sessions_checked"] == 1  # the noise keeps its history
    assert len(noise) > maintenance.ORPHAN_PAGE_SIZE


def test_orphan_job_paginates_in_bounded_pages(
    make_res: Callable[[int], Resources], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a page of two, the job still checks all five changed sessions in one run."""
    res = make_res(0)
    monkeypatch.setattr(maintenance, "ORPHAN_PAGE_SIZE", 2)
    pages: list[int] = []
    real_page = res.store.maintenance.changed_sessions_page

    def counted(*args: object, **kwargs: object) -> list[tuple[int, str]]:
        page = real_page(*args, **kwargs)  # type: ignore[arg-type]
        pages.append(len(page))
        return page

    monkeypatch.setattr(res.store.maintenance, "changed_sessions_page", counted)
    for i in range(5):
        _with_orphans(res.store, f"s{i}")
    report = run_job(res, None, "tombstone_orphans", "slot-1")
    assert (report["sessions_checked"], report["tombstoned_nodes"]) == (5, 10)
    assert pages == [2, 2, 1, 0]


def test_orphan_job_ignores_the_writers_own_clock(res: Resources) -> None:
    """Orphans whose node created_at (a worker's clock) claims 2025 but that the database
    recorded just now are not tombstoned; an hour later on the database clock they are."""
    _with_orphans(res.store, "s1")
    assert run_job(res, None, "tombstone_orphans", "slot-1")["tombstoned_nodes"] == 0
    assert sorted(res.store.sessions.orphaned_node_ids("s1")) == ["a1", "a2"]
    _age_nodes(res.store, "s1", 3_600_001)
    assert run_job(res, None, "tombstone_orphans", "slot-2")["tombstoned_nodes"] == 2


class _SkewedClock:
    """What `time` looks like on a worker whose clock runs an hour and a half ahead."""

    @staticmethod
    def time() -> float:
        return time.time() + 5400


def test_workers_with_skewed_clocks_share_a_maintenance_slot(
    res: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two firings of one job, the second on a worker whose clock is far ahead, fall in one
    slot (taken from the database clock): the second is skipped."""
    first = run_job(res, None, "vacuum")
    monkeypatch.setattr(maintenance, "time", _SkewedClock, raising=False)
    second = run_job(res, None, "vacuum")
    assert second == {"job": "vacuum", "slot": first["slot"], "skipped": "slot already ran"}
    assert len(res.store.maintenance.runs("vacuum")) == 1
