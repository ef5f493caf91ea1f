"""Attachments named by user input: put through the client, named at enqueue, kept by GC."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_tasks.attachments import FilesystemBlobStore, reclaim_unreferenced_attachments
from lash_tasks.client import Client
from lash_tasks.errors import AttachmentNotFound, UnknownAttachment
from lash_tasks.ingress import EnqueueTurnPayload, operations
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store
from tests.attachments.helpers import commit_turn, make_session

HOUR_MS = 3_600_000
PNG = bytes.fromhex("89504e470d0a1a0a") + b"rest of a png"


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Client:
    """A client over the `store` fixture whose attachment folder comes from its settings."""
    blob_root = tmp_path / "attachments"
    settings = Settings.from_env(
        {"LASH_HOME": str(tmp_path / "home"), "LASH_ATTACHMENTS_URL": blob_root.as_uri()}
    )
    return Client(store, settings)


def enqueue(store: Store, session_id: str, key: str, attachments: list[str]) -> str:
    payload = EnqueueTurnPayload(
        session_id=session_id, text="what is this?", source_key=key, attachments=tuple(attachments)
    )
    return operations.enqueue_turn(store, payload).input_id


def gc_an_hour_later(store: Store, client: Client) -> None:
    """One GC pass whose clocks say every intent and blob is an hour old."""
    report = reclaim_unreferenced_attachments(
        store.manifest, client.blobs, grace_ms=1, now_ms=store.manifest.now_ms() + HOUR_MS
    )
    assert report.failed_ids == []


def test_client_put_writes_through_the_session_manifest(store: Store, client: Client) -> None:
    """put_attachment records the session's row (with its media type) and the bytes under
    LASH_ATTACHMENTS_URL; another session cannot read them."""
    make_session(store, "s1")
    make_session(store, "s2")
    attachment_id = client.put_attachment("s1", PNG, "image/png")
    [row] = store.manifest.rows("s1")
    assert (row.attachment_id, row.media_type, row.committed_at) == (
        attachment_id,
        "image/png",
        None,
    )
    assert isinstance(client.blobs, FilesystemBlobStore)
    assert client.get_attachment("s1", attachment_id) == PNG
    with pytest.raises(AttachmentNotFound):
        client.get_attachment("s2", attachment_id)


def test_an_attachment_of_a_pending_input_survives_gc(store: Store, client: Client) -> None:
    """While its input is pending, an attachment's row and bytes outlive any GC pass; once the
    input is cancelled they are reclaimed."""
    # Given an image put for s1 and named by a pending input
    make_session(store, "s1")
    attachment_id = client.put_attachment("s1", PNG, "image/png")
    input_id = enqueue(store, "s1", "k1", [attachment_id])

    # When GC runs long after the grace window, Then the input's attachment is kept
    gc_an_hour_later(store, client)
    assert client.get_attachment("s1", attachment_id) == PNG

    # When the input is cancelled, Then the next GC reclaims row and bytes
    store.inputs.cancel("s1", input_id=input_id)
    gc_an_hour_later(store, client)
    assert store.manifest.rows("s1") == []
    assert client.blobs.head(attachment_id) is None


def test_an_attachment_put_but_never_named_is_reclaimed(store: Store, client: Client) -> None:
    """An ownerless put that no input names dies with the grace window."""
    make_session(store, "s1")
    attachment_id = client.put_attachment("s1", b"forgotten", "text/plain")
    gc_an_hour_later(store, client)
    assert store.manifest.rows("s1") == []
    assert client.blobs.head(attachment_id) is None


def test_another_sessions_attachment_cannot_be_named(store: Store, client: Client) -> None:
    """Enqueue with an id only another session holds is UnknownAttachment; nothing written."""
    make_session(store, "s1")
    make_session(store, "s2")
    theirs = client.put_attachment("s2", PNG, "image/png")
    commit_turn(store, "s2", "t1", attachment_ids=(theirs,))
    with pytest.raises(UnknownAttachment):
        enqueue(store, "s1", "k1", [theirs])
    assert store.inputs.list_all("s1") == []
    assert store.manifest.rows("s1") == []
