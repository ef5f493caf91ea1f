"""The session facade: write-ahead intents, session isolation, and commit-time stamping."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_tasks.attachments import (
    FilesystemBlobStore,
    InlineSessionAttachments,
    InMemoryBlobStore,
    SessionAttachments,
    attachments_for,
)
from lash_tasks.errors import AttachmentNotFound, SessionNotFound, ValidationError
from lash_tasks.machine.ids import attachment_id_for
from lash_tasks.store.store import Store
from lash_tasks.tools.contract import AttachmentSink
from tests.attachments.helpers import commit_turn, make_session


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def test_put_records_the_intent_and_stores_the_bytes(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """put writes an uncommitted row with uri and owner, and the blob; get reads it back."""
    make_session(store, "s1")
    attachments = SessionAttachments(store.manifest, blobs, "s1", "turn", "t1")
    attachment_id = attachments.put(b"report", "text/plain")
    [row] = store.manifest.rows("s1")
    assert (row.attachment_id, row.committed_at, row.owner_kind, row.owner_id) == (
        attachment_id,
        None,
        "turn",
        "t1",
    )
    assert row.uri == f"lash-attachment://sha256/{attachment_id}"
    assert attachments.get(attachment_id) == b"report"
    assert attachments.list() == [attachment_id]
    assert isinstance(attachments, AttachmentSink)


def test_bytes_never_land_when_the_intent_cannot_be_recorded(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A put for a missing session fails before any byte is written."""
    attachments = SessionAttachments(store.manifest, blobs, "no-such-session")
    with pytest.raises(SessionNotFound):
        attachments.put(b"orphan")
    assert list(blobs.list()) == []


def test_another_session_cannot_read_by_id(store: Store, blobs: FilesystemBlobStore) -> None:
    """Knowing an id is not enough: a session without a row gets AttachmentNotFound."""
    make_session(store, "alice")
    make_session(store, "mallory")
    secret_id = SessionAttachments(store.manifest, blobs, "alice").put(b"alice's secret")
    mallory = SessionAttachments(store.manifest, blobs, "mallory")
    with pytest.raises(AttachmentNotFound):
        mallory.get(secret_id)
    assert mallory.list() == []


def test_delete_forgets_only_this_sessions_reference(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """Deleting in one session leaves the bytes readable by another that put them too."""
    make_session(store, "s1")
    make_session(store, "s2")
    one = SessionAttachments(store.manifest, blobs, "s1")
    two = SessionAttachments(store.manifest, blobs, "s2")
    attachment_id = one.put(b"shared")
    assert two.put(b"shared") == attachment_id
    one.delete(attachment_id)
    with pytest.raises(AttachmentNotFound):
        one.get(attachment_id)
    assert two.get(attachment_id) == b"shared"


def test_facade_validates_input(store: Store, blobs: FilesystemBlobStore) -> None:
    """Bad ids, bad data and bad media types raise ValidationError; empty bytes are fine."""
    make_session(store, "s1")
    attachments = SessionAttachments(store.manifest, blobs, "s1")
    for bad in ("../../etc/passwd", "XYZ", "A" * 64):
        with pytest.raises(ValidationError):
            attachments.get(bad)
        with pytest.raises(ValidationError):
            attachments.delete(bad)
    with pytest.raises(ValidationError):
        attachments.put("text")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        attachments.put(b"x", "")
    empty = attachments.put(b"")
    assert attachments.get(empty) == b""


def test_get_of_a_held_id_whose_blob_is_missing_raises_not_found(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A manifest row without bytes reads as AttachmentNotFound, not a crash."""
    make_session(store, "s1")
    attachments = SessionAttachments(store.manifest, blobs, "s1")
    attachment_id = attachments.put(b"soon gone")
    blobs.delete(attachment_id)
    with pytest.raises(AttachmentNotFound):
        attachments.get(attachment_id)


def test_final_commit_stamps_the_turns_own_intents_only(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """The turn stamp commits rows owned by that turn; other owners stay intents."""
    make_session(store, "s1")
    mine = SessionAttachments(store.manifest, blobs, "s1", "turn", "t1")
    other = SessionAttachments(store.manifest, blobs, "s1", "turn", "t0")
    ownerless = SessionAttachments(store.manifest, blobs, "s1")
    a = mine.put(b"a")
    b = mine.put(b"b")
    c = other.put(b"c")
    d = ownerless.put(b"d")
    commit_turn(store, "s1", "t1")
    committed = {r.attachment_id: r.committed_at is not None for r in store.manifest.rows("s1")}
    assert committed == {a: True, b: True, c: False, d: False}


def test_stamping_never_resurrects_a_forgotten_row(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A row forgotten before the final commit stays gone, listed or owned."""
    make_session(store, "s1")
    attachments = SessionAttachments(store.manifest, blobs, "s1", "turn", "t1")
    kept = attachments.put(b"kept")
    forgotten = attachments.put(b"forgotten")
    listed_only = attachment_id_for(b"never recorded")
    attachments.delete(forgotten)
    commit_turn(store, "s1", "t1", attachment_ids=(forgotten, listed_only))
    rows = store.manifest.rows("s1")
    assert [(r.attachment_id, r.committed_at is not None) for r in rows] == [(kept, True)]


def test_explicitly_listed_ids_are_stamped_whoever_owns_them(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """committed_attachment_ids stamps this session's rows for those ids."""
    make_session(store, "s1")
    make_session(store, "s2")
    attachment_id = SessionAttachments(store.manifest, blobs, "s1").put(b"listed")
    SessionAttachments(store.manifest, blobs, "s2").put(b"listed")
    commit_turn(store, "s1", "t1", attachment_ids=(attachment_id,))
    assert store.manifest.rows("s1")[0].committed_at is not None
    assert store.manifest.rows("s2")[0].committed_at is None


def test_attachments_for_picks_the_facade_by_store_tier(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """A durable store gets the manifest facade; an inline store the plain wrapper."""
    facade = attachments_for(store.manifest, blobs, "s1", "turn", "t1")
    assert isinstance(facade, SessionAttachments)
    assert (facade.owner_kind, facade.owner_id) == ("turn", "t1")
    inline_store = Store.from_url("sqlite://")
    try:
        assert inline_store.durability_tier == "inline"
        wrapper = attachments_for(inline_store.manifest, InMemoryBlobStore(), "s1")
        assert isinstance(wrapper, InlineSessionAttachments)
    finally:
        inline_store.close()


def test_inline_wrapper_stores_without_manifest_rows() -> None:
    """The inline wrapper puts and gets through the blob store; delete keeps shared bytes."""
    blobs = InMemoryBlobStore()
    wrapper = InlineSessionAttachments(blobs, "s1")
    attachment_id = wrapper.put(b"inline", "text/plain")
    assert wrapper.get(attachment_id) == b"inline"
    assert wrapper.list() == [attachment_id]
    wrapper.delete(attachment_id)
    assert wrapper.list() == []
    assert blobs.get(attachment_id) == b"inline"
    with pytest.raises(ValidationError):
        wrapper.get("../x")


def test_read_returns_the_media_type_and_withholds_oversized_content(
    store: Store, blobs: FilesystemBlobStore
) -> None:
    """read gives the type the put named; content over max_bytes is sized but not read."""
    make_session(store, "s1")
    attachments = SessionAttachments(store.manifest, blobs, "s1")
    attachment_id = attachments.put(b"0123456789", "text/plain")
    full = attachments.read(attachment_id)
    assert (full.media_type, full.size, full.data, full.complete) == (
        "text/plain",
        10,
        b"0123456789",
        True,
    )
    withheld = attachments.read(attachment_id, max_bytes=4)
    assert (withheld.size, withheld.data, withheld.complete) == (10, b"", False)
    make_session(store, "s2")
    with pytest.raises(AttachmentNotFound):
        SessionAttachments(store.manifest, blobs, "s2").read(attachment_id)
    inline = InlineSessionAttachments(InMemoryBlobStore(), "s1")
    inline_id = inline.put(b"inline", "text/plain")
    assert inline.read(inline_id).media_type is None
