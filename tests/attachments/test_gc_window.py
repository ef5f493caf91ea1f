"""The window between GC's last reference probe and the blob delete (filesystem store).

A put is *intent, then bytes*; a filesystem GC is *probe, rename to trash, re-probe, then
unlink or restore*. Each test below makes another session's put of the same content land at
one exact point between GC's phases, through a hook on the manifest GC consults, and then
checks what the disk and the manifest hold.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lash_tasks.attachments import (
    FilesystemBlobStore,
    InMemoryBlobStore,
    SessionAttachments,
    attachment_uri,
    reclaim_unreferenced_attachments,
)
from lash_tasks.machine.ids import attachment_id_for
from lash_tasks.store.store import Store
from tests.attachments.helpers import commit_turn, make_session

CONTENT = b"bytes two sessions share\n" * 64
ID = attachment_id_for(CONTENT)
Hook = Callable[[], None]


class ProbeHooks:
    """The manifest as GC sees it, running a hook before or after the n-th reference probe.

    GC probes `has_live_ref` once before it touches a blob and once after; hooking those
    calls puts a concurrent writer at an exact point of GC's sequence without any sleeping.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls = 0
        self.before: dict[int, Hook] = {}
        self.after: dict[int, Hook] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store.manifest, name)

    def has_live_ref(self, attachment_id: str, cutoff_ms: int) -> bool:
        self.calls += 1
        if self.calls in self.before:
            self.before[self.calls]()
        answer = self._store.manifest.has_live_ref(attachment_id, cutoff_ms)
        if self.calls in self.after:
            self.after[self.calls]()
        return answer


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def old_unreferenced_blob(blobs: FilesystemBlobStore) -> None:
    """The shared content stored long ago, with no session referencing it any more."""
    blobs.put(CONTENT, "text/plain")
    old = time.time_ns() - 3600 * 10**9
    os.utime(blobs.path_for(ID), ns=(old, old))


def trash_files(blobs: FilesystemBlobStore) -> list[str]:
    return sorted(
        name for _, _, names in os.walk(blobs.root) for name in names if name.endswith(".trash")
    )


def test_a_put_landing_between_the_probe_and_the_delete_keeps_its_bytes(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A whole put (intent and bytes) right after GC's probe ends with the bytes stored."""
    # Given an old blob nobody references, and session s2 about to put the same content
    old_unreferenced_blob(blobs)
    make_session(store, "s2")
    s2 = SessionAttachments(store.manifest, blobs, "s2", "turn", "t1")
    hooks = ProbeHooks(store)
    hooks.after[1] = lambda: s2.put(CONTENT, "text/plain")

    # When GC runs, and s2's put lands just after GC's first probe said "unreferenced"
    report = reclaim_unreferenced_attachments(hooks, blobs, grace_ms=0)  # type: ignore[arg-type]

    # Then s2 can read its bytes, nothing was reclaimed, and no trash is left behind
    assert hooks.calls >= 1
    assert s2.get(ID) == CONTENT
    assert (report.reclaimed, report.failed_ids) == (0, [])
    assert report.restored == [ID]
    assert trash_files(blobs) == []


def put_intent(store: Store) -> Hook:
    """The first half of s2's put: the write-ahead intent."""

    def hook() -> None:
        store.manifest.record_intent("s2", ID, attachment_uri(ID), "turn", "t1")

    return hook


def put_bytes(blobs: FilesystemBlobStore | InMemoryBlobStore) -> Hook:
    """The second half of s2's put: the bytes."""

    def hook() -> None:
        blobs.put(CONTENT, "text/plain")

    return hook


def in_order(hooks: list[Hook]) -> Hook:
    def hook() -> None:
        for each in hooks:
            each()

    return hook


@pytest.mark.parametrize(
    ("intent_at", "bytes_at"),
    [
        # (hook point of the intent, hook point of the bytes); "end" = after GC returned
        (("after", 1), ("after", 1)),
        (("after", 1), ("before", 2)),
        (("after", 1), "end"),
        (("before", 2), ("before", 2)),
        (("before", 2), "end"),
        (("after", 2), ("after", 2)),
        (("after", 2), "end"),
    ],
)
def test_every_interleaving_of_put_and_gc_ends_with_the_bytes_stored(
    store: Store,
    blobs: FilesystemBlobStore,
    intent_at: tuple[str, int],
    bytes_at: tuple[str, int] | str,
) -> None:
    """Wherever a put's intent and bytes fall among GC's phases, the referenced bytes stay."""
    old_unreferenced_blob(blobs)
    make_session(store, "s2")
    hooks = ProbeHooks(store)
    steps: dict[tuple[str, int], list[Hook]] = {}
    steps.setdefault(intent_at, []).append(put_intent(store))
    if bytes_at != "end":
        assert isinstance(bytes_at, tuple)
        steps.setdefault(bytes_at, []).append(put_bytes(blobs))
    for (when, call), hooks_here in steps.items():
        (hooks.after if when == "after" else hooks.before)[call] = in_order(hooks_here)

    report = reclaim_unreferenced_attachments(hooks, blobs, grace_ms=0)  # type: ignore[arg-type]
    if bytes_at == "end":
        put_bytes(blobs)()

    assert report.failed_ids == []
    assert store.manifest.holds_ref("s2", ID)
    assert blobs.get(ID) == CONTENT
    assert trash_files(blobs) == []


def test_an_intentless_put_landing_in_the_window_is_kept_as_fresh(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """Bytes rewritten after GC's freshness check are fresh again: GC puts them back."""
    old_unreferenced_blob(blobs)
    hooks = ProbeHooks(store)
    hooks.after[1] = put_bytes(blobs)
    report = reclaim_unreferenced_attachments(hooks, blobs, grace_ms=60_000)  # type: ignore[arg-type]
    assert report.reclaimed == 0
    assert blobs.get(ID) == CONTENT


def test_stray_trash_of_a_crashed_gc_is_settled_by_the_next_run(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A blob left in the trash is restored if referenced, else deleted, by the next GC."""
    # Given a GC that crashed after moving two blobs to the trash: one still unreferenced,
    # one whose content a session committed meanwhile
    make_session(store, "s1")
    unreferenced = blobs.put(b"nobody wants me", "text/plain").attachment_id
    wanted = SessionAttachments(store.manifest, blobs, "s1", "turn", "t1").put(b"s1 needs me")
    commit_turn(store, "s1", "t1")
    for attachment_id in (unreferenced, wanted):
        assert blobs.trash(attachment_id) is not None
    assert len(trash_files(blobs)) == 2
    assert blobs.head(wanted) is None

    # When the next GC runs
    report = reclaim_unreferenced_attachments(store.manifest, blobs, grace_ms=0)

    # Then the wanted blob is back in place, the other is gone, and the trash is empty
    assert SessionAttachments(store.manifest, blobs, "s1").get(wanted) == b"s1 needs me"
    assert blobs.head(unreferenced) is None
    assert trash_files(blobs) == []
    assert report.restored == [wanted]
    assert report.failed_ids == []


def test_a_store_without_trash_deletes_directly_and_reports_the_race(store: Store) -> None:
    """Without atomic trash, a put landing in the window is reported in
    deleted_while_referenced."""
    blobs = InMemoryBlobStore()
    blobs.put(CONTENT, "text/plain")
    make_session(store, "s2")
    hooks = ProbeHooks(store)
    hooks.after[1] = put_intent(store)
    future = store.manifest.now_ms() + 3_600_000
    report = reclaim_unreferenced_attachments(hooks, blobs, 1, now_ms=future)  # type: ignore[arg-type]
    assert report.deleted_while_referenced == [ID]
    assert blobs.head(ID) is None
