"""A worker's heartbeat on the real store (both dialects): registration over a dead or live
namesake, and the reaper that pokes a dead incarnation's sessions."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator, Sequence

import pytest

from lash_tasks.errors import WorkerIdentityInUse
from lash_tasks.store.records import Busy
from lash_tasks.store.store import Store
from lash_tasks.worker.heartbeat import Heartbeat
from lash_tasks.worker.process_identity import local_evidence
from tests.store_conformance.support import enqueue, new_session, take_lease

INTERVAL_MS = 50
TTL_MS = 30_000


class Pokes:
    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.poked = threading.Event()

    def __call__(self, sessions: Sequence[str]) -> None:
        self.sessions += sessions
        self.poked.set()


def heartbeat(store: Store, owner: str, incarnation: str, pokes: Pokes | None = None) -> Heartbeat:
    return Heartbeat(
        store,
        owner,
        incarnation,
        interval_ms=INTERVAL_MS,
        lease_ttl_ms=TTL_MS,
        poke=pokes if pokes is not None else Pokes(),
    )


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _predecessor(store: Store, proc: subprocess.Popen[bytes], **change: object) -> None:
    """An earlier incarnation of `w1` that ran as `proc`, registered with a live heartbeat."""
    evidence = local_evidence(proc.pid)
    if evidence is None:
        pytest.skip("needs Linux /proc")
    store.heartbeats.register("w1", "inc-old", grace_ms=TTL_MS, liveness={**evidence, **change})


def test_restart_proves_the_predecessor_dead_and_pokes_its_sessions(
    store: Store, other_process: subprocess.Popen[bytes]
) -> None:
    """A predecessor whose process is gone is declared dead at registration; its session is
    poked and its lease goes to the new incarnation with fence + 1."""
    sid = new_session(store)
    _predecessor(store, other_process)
    old = take_lease(store, sid, "w1", "inc-old", ttl_ms=TTL_MS)
    other_process.kill()
    other_process.wait(timeout=10)
    pokes = Pokes()
    heartbeat(store, "w1", "inc-new", pokes).register()
    assert pokes.sessions == [sid]
    assert take_lease(store, sid, "w1", "inc-new").fencing_token == old.fencing_token + 1
    assert [i.incarnation_id for i in store.heartbeats.live_incarnations("w1")] == ["inc-new"]


def test_a_live_namesake_refuses_the_newcomer(
    store: Store, other_process: subprocess.Popen[bytes]
) -> None:
    """While the predecessor's process runs, registration raises WorkerIdentityInUse,
    writes nothing, and the predecessor keeps its lease."""
    sid = new_session(store)
    _predecessor(store, other_process)
    take_lease(store, sid, "w1", "inc-old", ttl_ms=TTL_MS)
    with pytest.raises(WorkerIdentityInUse) as refused:
        heartbeat(store, "w1", "inc-new").register()
    assert f"pid {other_process.pid}" in refused.value.message
    assert store.heartbeats.incarnation("inc-new") is None
    assert isinstance(store.leases.try_claim(sid, "w1", "inc-new", TTL_MS), Busy)


def test_an_undecidable_namesake_that_keeps_beating_refuses_the_newcomer(
    store: Store, other_process: subprocess.Popen[bytes]
) -> None:
    """A namesake in another PID namespace is judged by its heartbeat: if it goes on while
    the newcomer waits, the newcomer refuses to start."""
    _predecessor(store, other_process, pid_namespace="pid:[1]")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(INTERVAL_MS / 1000):
            store.heartbeats.beat("w1", "inc-old", grace_ms=3 * INTERVAL_MS)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        with pytest.raises(WorkerIdentityInUse) as refused:
            heartbeat(store, "w1", "inc-new").register()
    finally:
        stop.set()
        beater.join(timeout=5)
    assert "heartbeat goes on" in refused.value.message
    assert store.heartbeats.incarnation("inc-new") is None


def test_an_undecidable_namesake_that_stopped_is_taken_over_once_it_expires(
    store: Store, other_process: subprocess.Popen[bytes]
) -> None:
    """A silent namesake in another namespace expires within one grace period; then the
    newcomer registers and its lease is taken over."""
    sid = new_session(store)
    _predecessor(store, other_process, pid_namespace="pid:[1]")
    store.heartbeats.beat("w1", "inc-old", grace_ms=3 * INTERVAL_MS)  # its last beat
    take_lease(store, sid, "w1", "inc-old", ttl_ms=TTL_MS)
    pokes = Pokes()
    heartbeat(store, "w1", "inc-new", pokes).register()
    assert pokes.sessions == [sid]
    assert take_lease(store, sid, "w1", "inc-new").fencing_token == 2


def test_a_live_workers_reaper_pokes_the_sessions_of_one_that_stopped(store: Store) -> None:
    """Worker B's heartbeat thread finds A's heartbeat expired and pokes A's sessions once;
    a clean stop retires the incarnation at once."""
    sid = new_session(store)
    pokes = Pokes()
    a = heartbeat(store, "wa", "inc-a")
    b = heartbeat(store, "wb", "inc-b", pokes)
    a.register()
    b.register()
    take_lease(store, sid, "wa", "inc-a", ttl_ms=TTL_MS)
    a.start()
    b.start()
    try:
        a.stop(retire=False)  # A dies: no more beats, nothing retired
        assert pokes.poked.wait(10), "B never reaped A"
        assert pokes.sessions == [sid]
        assert take_lease(store, sid, "wb", "inc-b").fencing_token == 2
    finally:
        b.stop(retire=True)
    assert store.heartbeats.live_incarnations("wb") == []


def test_a_poke_that_fails_does_not_stop_the_reaper(store: Store) -> None:
    """With the broker away the reap still completes and the dead incarnation counts as
    reaped; its session is left to the sweeper, which sees its lease as not live."""
    sid = new_session(store)
    enqueue(store, sid, "k1")
    store.heartbeats.register("wa", "inc-a", grace_ms=TTL_MS)
    take_lease(store, sid, "wa", "inc-a", ttl_ms=TTL_MS)
    store.heartbeats.retire("inc-a")

    def broker_away(sessions: Sequence[str]) -> None:
        raise ConnectionError("broker unreachable")

    Heartbeat(
        store, "wb", "inc-b", interval_ms=INTERVAL_MS, lease_ttl_ms=TTL_MS, poke=broker_away
    ).register()
    reaped = store.heartbeats.incarnation("inc-a")
    assert reaped is not None and reaped.reaped_at is not None
    assert [r.session_id for r in store.maintenance.runnable_sessions()] == [sid]
