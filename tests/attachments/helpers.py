"""Shared test helpers: sessions, fenced turn commits, and out-of-process workers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from lash_tasks.machine import (
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    GraphUnchanged,
    ModelSpec,
    SessionPolicy,
    TurnStamp,
)
from lash_tasks.store.records import Lease
from lash_tasks.store.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY = SessionPolicy(model=ModelSpec(id="scripted-model"))


def make_session(store: Store, session_id: str) -> str:
    store.sessions.create(session_id, POLICY)
    return session_id


def commit_turn(
    store: Store, session_id: str, turn_id: str, attachment_ids: tuple[str, ...] = ()
) -> CommitResult:
    """A final commit of `turn_id` under a freshly taken lease, as a worker would make it."""
    lease = store.leases.try_claim(session_id, "test-worker", "incarnation-1")
    assert isinstance(lease, Lease)
    head = store.sessions.record(session_id).head_revision
    return store.commits.commit(
        CommitDraft(
            session_id=session_id,
            expected_head_revision=head,
            fence=lease.fence,
            graph=GraphUnchanged(None),
            active_turn=ClearActiveTurn(),
            turn_stamp=TurnStamp(turn_id, hashlib.sha256(turn_id.encode()).hexdigest(), {}),
            committed_attachment_ids=attachment_ids,
            release_lease=True,
        )
    )


def store_url(store: Store) -> str:
    return store.database.engine.url.render_as_string(hide_password=False)


def start_worker(*args: str) -> subprocess.Popen[bytes]:
    """Run `tests.attachments._worker` in a fresh interpreter (no inherited engines)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.attachments._worker", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"worker exited with {proc.returncode} early:\n{stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"worker did not write {path} within {timeout}s")
        time.sleep(0.02)
