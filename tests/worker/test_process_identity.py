"""Death proofs for worker incarnations: only the same PID namespace of the same boot can
prove a process gone; anything else is left to the heartbeat's expiry."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lash_tasks.worker.process_identity import judge, local_evidence, owner_id_for

MINE = local_evidence()
pytestmark = pytest.mark.skipif(MINE is None, reason="needs Linux /proc")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _evidence(pid: int) -> dict[str, Any]:
    evidence = local_evidence(pid)
    assert evidence is not None
    return evidence


def test_a_running_process_is_alive(child: subprocess.Popen[bytes]) -> None:
    """A process that still runs, with the start time recorded for it, is alive."""
    assert judge(_evidence(child.pid)) == "alive"
    assert judge(MINE) == "alive"


def test_a_reaped_process_is_dead(child: subprocess.Popen[bytes]) -> None:
    """Once the process is gone from /proc its incarnation is provably dead."""
    evidence = _evidence(child.pid)
    child.kill()
    child.wait(timeout=10)
    assert judge(evidence) == "dead"


def test_a_zombie_is_dead(child: subprocess.Popen[bytes]) -> None:
    """A killed process its parent has not reaped yet (a zombie) is dead."""
    evidence = _evidence(child.pid)
    child.kill()
    deadline = time.monotonic() + 10
    while judge(evidence) != "dead" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert judge(evidence) == "dead"


def test_a_reused_pid_does_not_keep_a_dead_incarnation_alive(
    child: subprocess.Popen[bytes],
) -> None:
    """The pid now belongs to a process started at another time: the recorded one is dead."""
    evidence = {**_evidence(child.pid), "start_ticks": _evidence(child.pid)["start_ticks"] - 1}
    assert judge(evidence) == "dead"


@pytest.mark.parametrize(
    "change",
    [
        {"pid_namespace": "pid:[1]"},  # another container on this kernel: pids mean nothing
        {"boot_id": "00000000-0000-0000-0000-000000000000"},  # another machine or boot
        {"pid": "12"},
        {"pid": True},
    ],
)
def test_evidence_from_elsewhere_proves_nothing(
    child: subprocess.Popen[bytes], change: dict[str, Any]
) -> None:
    """Another namespace, another boot or a malformed pid: unknown, even for a dead pid."""
    evidence = _evidence(child.pid)
    child.kill()
    child.wait(timeout=10)
    assert judge({**evidence, **change}) == "unknown"


def test_missing_evidence_proves_nothing() -> None:
    """No evidence recorded (or none of our own): unknown."""
    assert judge(None) == "unknown"
    assert judge("pid 12") == "unknown"
    assert MINE is not None
    assert judge({"pid": 1}, mine={**MINE, "pid_namespace": "x"}) == "unknown"


def test_owner_ids_are_the_node_name_and_the_pool_slot() -> None:
    """A main process is its node name; a prefork child adds its slot."""
    assert owner_id_for("w1@host") == "w1@host"
    assert owner_id_for("w1@host", 0) == "w1@host/0"
