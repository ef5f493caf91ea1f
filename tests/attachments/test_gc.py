"""Attachment GC against real stores on both dialects and a real filesystem."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lash_tasks.attachments import (
    FilesystemBlobStore,
    ReclaimReport,
    SessionAttachments,
    TrashedBlob,
    attachment_uri,
    reclaim_unreferenced_attachments,
)
from lash_tasks.errors import StoreUnavailable, ValidationError
from lash_tasks.machine.ids import attachment_id_for
from lash_tasks.store.store import Store
from tests.attachments import _worker
from tests.attachments.helpers import (
    commit_turn,
    make_session,
    start_worker,
    store_url,
    wait_for_file,
)

LONG_GRACE_MS = 60_000


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def make_old(blobs: FilesystemBlobStore, attachment_id: str) -> None:
    """Backdate a blob's mtime by an hour, as if it had been put long ago."""
    path = blobs.path_for(attachment_id)
    old = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(old, old))


def gc(store: Store, blobs: FilesystemBlobStore, grace_ms: int = 0) -> ReclaimReport:
    report = reclaim_unreferenced_attachments(store.manifest, blobs, grace_ms)
    json.dumps(report.to_dict())
    assert report.failed_ids == []
    return report


def test_a_killed_put_is_reclaimed_only_after_grace_and_a_later_turn(
    store: Store, blobs: FilesystemBlobStore, tmp_path: Path
) -> None:
    """SIGKILL after put: intent and blob survive GC until grace passed and another turn
    committed."""
    # Given a worker process killed right after putting an attachment for turn t1
    make_session(store, "s1")
    marker = tmp_path / "put-done"
    proc = start_worker("put-and-hang", store_url(store), str(blobs.root), "s1", "t1", str(marker))
    try:
        wait_for_file(marker, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    attachment_id = marker.read_text()
    assert attachment_id == attachment_id_for(_worker.PAYLOAD)
    [row] = store.manifest.rows("s1")
    assert (row.attachment_id, row.committed_at, row.owner_id) == (attachment_id, None, "t1")
    assert blobs.get(attachment_id) == _worker.PAYLOAD

    # When GC runs inside the grace window, Then both stay
    report = gc(store, blobs, grace_ms=LONG_GRACE_MS)
    assert (report.scanned, report.reclaimed, report.forgotten_intents) == (1, 0, 0)
    assert store.manifest.holds_ref("s1", attachment_id) and blobs.head(attachment_id) is not None

    # When the grace window has passed but no later turn committed, Then the owner may be alive
    time.sleep(0.3)
    report = gc(store, blobs, grace_ms=200)
    assert (report.reclaimed, report.forgotten_intents) == (0, 0)
    assert store.manifest.holds_ref("s1", attachment_id) and blobs.head(attachment_id) is not None

    # When a later, different turn of the session commits and the grace window passes again
    commit_turn(store, "s1", "t2")
    time.sleep(0.3)
    report = gc(store, blobs, grace_ms=200)

    # Then the dead intent and its blob are gone
    assert (report.forgotten_intents, report.reclaimed) == (1, 1)
    assert report.deleted_while_referenced == [] and report.missing_blobs == []
    assert store.manifest.rows("s1") == []
    assert blobs.head(attachment_id) is None


def test_committed_attachments_survive_every_gc_and_a_sharing_sessions_deletion(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A committed reference keeps its blob through any number of GC runs."""
    # Given two sessions that both committed the same bytes
    make_session(store, "s1")
    make_session(store, "s2")
    attachment_id = SessionAttachments(store.manifest, blobs, "s1", "turn", "t1").put(b"keep me")
    commit_turn(store, "s1", "t1")
    SessionAttachments(store.manifest, blobs, "s2", "turn", "u1").put(b"keep me")
    commit_turn(store, "s2", "u1")
    make_old(blobs, attachment_id)
    for _ in range(3):
        assert gc(store, blobs).reclaimed == 0

    # When the first session is deleted, Then the second's reference still keeps the bytes
    store.sessions.delete("s1")
    for _ in range(3):
        report = gc(store, blobs)
        assert (report.reclaimed, report.missing_blobs) == (0, [])
    assert SessionAttachments(store.manifest, blobs, "s2").get(attachment_id) == b"keep me"

    # When the last referencing session goes too, Then the bytes are reclaimed
    store.sessions.delete("s2")
    assert gc(store, blobs).reclaimed == 1
    assert blobs.head(attachment_id) is None


def test_fresh_unreferenced_blobs_wait_for_the_grace_window(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A blob without any row is kept while younger than the grace window, then reclaimed."""
    attachment_id = blobs.put(b"stray", "text/plain").attachment_id
    assert gc(store, blobs, grace_ms=LONG_GRACE_MS).reclaimed == 0
    make_old(blobs, attachment_id)
    report = gc(store, blobs, grace_ms=LONG_GRACE_MS)
    assert (report.scanned, report.reclaimed) == (1, 1)
    assert blobs.head(attachment_id) is None


def test_explicit_now_pins_both_clocks(store: Store, blobs: FilesystemBlobStore) -> None:
    """With now_ms given, an ownerless intent and its fresh blob age by that clock."""
    make_session(store, "s1")
    attachment_id = SessionAttachments(store.manifest, blobs, "s1").put(b"ownerless")
    now = store.manifest.now_ms()
    kept = reclaim_unreferenced_attachments(store.manifest, blobs, 1000, now_ms=now)
    assert (kept.forgotten_intents, kept.reclaimed) == (0, 0)
    later = reclaim_unreferenced_attachments(store.manifest, blobs, 1000, now_ms=now + 3_600_000)
    assert (later.forgotten_intents, later.reclaimed) == (1, 1)
    assert not store.manifest.holds_ref("s1", attachment_id)


def test_rows_pointing_at_missing_blobs_are_reported_not_fatal(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A committed row whose bytes are gone lands in missing_blobs; GC carries on."""
    make_session(store, "s1")
    lost = attachment_id_for(b"lost")
    store.manifest.record_intent("s1", lost, attachment_uri(lost), "turn", "t1")
    commit_turn(store, "s1", "t1")
    stray = blobs.put(b"stray", "text/plain").attachment_id
    make_old(blobs, stray)
    report = gc(store, blobs)
    assert report.missing_blobs == [lost]
    assert report.reclaimed == 1
    assert store.manifest.holds_ref("s1", lost)


def test_per_blob_failures_are_recorded_and_the_sweep_continues(
    store: Store, blobs: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob that cannot be deleted is reported in failed_ids; the others are reclaimed."""
    ids = [blobs.put(bytes([i]), "application/octet-stream").attachment_id for i in range(3)]
    for attachment_id in ids:
        make_old(blobs, attachment_id)
    broken = ids[1]
    real_trash = blobs.trash

    def flaky_trash(attachment_id: str) -> TrashedBlob | None:
        # The filesystem store deletes by moving to the trash first.
        if attachment_id == broken:
            raise StoreUnavailable("disk on fire")
        return real_trash(attachment_id)

    monkeypatch.setattr(blobs, "trash", flaky_trash)
    report = reclaim_unreferenced_attachments(store.manifest, blobs, 0)
    assert report.failed_ids == [broken]
    assert report.reclaimed == 2
    assert [info.attachment_id for info in blobs.list()] == [broken]


def test_negative_grace_is_refused(store: Store, blobs: FilesystemBlobStore) -> None:
    """A negative grace window would reclaim blobs from the future: ValidationError."""
    with pytest.raises(ValidationError):
        reclaim_unreferenced_attachments(store.manifest, blobs, -1)


def test_gc_racing_puts_never_loses_a_referenced_blob(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """Every id referenced at the end has its blob, however GC and the puts interleave."""
    # Given old, unreferenced blobs whose content sessions are about to put again
    contents = [f"content-{i}".encode() for i in range(40)]
    ids = [blobs.put(c, "text/plain").attachment_id for c in contents]
    for attachment_id in ids:
        make_old(blobs, attachment_id)
    sessions = [make_session(store, f"s{i}") for i in range(3)]
    reported: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def putter(session_id: str) -> None:
        try:
            attachments = SessionAttachments(store.manifest, blobs, session_id, "turn", "t1")
            for data in contents:
                attachments.put(data, "text/plain")
        except BaseException as exc:
            errors.append(exc)

    def collector() -> None:
        try:
            while not stop.is_set():
                # A pinned clock far ahead makes every blob look old, so GC races the puts on
                # every id rather than skipping them as fresh.
                future = store.manifest.now_ms() + 3_600_000
                report = reclaim_unreferenced_attachments(store.manifest, blobs, 1, now_ms=future)
                reported.update(report.deleted_while_referenced)
                assert report.failed_ids == []
        except BaseException as exc:
            errors.append(exc)

    # When GC runs continuously while the sessions put the same contents
    gc_thread = threading.Thread(target=collector)
    putters = [threading.Thread(target=putter, args=(s,)) for s in sessions]
    gc_thread.start()
    for thread in putters:
        thread.start()
    for thread in putters:
        thread.join(timeout=60)
    stop.set()
    gc_thread.join(timeout=60)
    assert errors == []

    # Then every referenced id is stored: the two-phase delete put back whatever it trashed
    # under a put (nothing lost, so nothing to report either)
    referenced = {
        row.attachment_id for session_id in sessions for row in store.manifest.rows(session_id)
    }
    assert referenced == set(ids)
    assert {i for i in referenced if blobs.head(i) is None} == set()
    assert reported == set()
