"""Layer 1 contract: both blob stores, the URL factory, and the filesystem's atomic puts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lash_tasks.attachments import (
    BlobStore,
    FilesystemBlobStore,
    InMemoryBlobStore,
    TrashedBlob,
    attachment_uri,
    blob_store_from_url,
)
from lash_tasks.errors import AttachmentNotFound, InvalidEnvironment, ValidationError
from tests.attachments import _worker
from tests.attachments.helpers import start_worker

BAD_IDS = [
    "../../etc/passwd",
    "../" + "a" * 61,
    "A" * 64,
    "g" * 64,
    "a" * 63,
    "a" * 65,
    "a" * 64 + "\n",
    "",
    "ab/" + "c" * 61,
]


@pytest.fixture(params=["filesystem", "memory"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")
    else:
        yield InMemoryBlobStore()


def test_put_then_get_returns_the_same_bytes_under_their_sha256(blobs: BlobStore) -> None:
    """put returns the content's sha256 id and uri; get returns the same bytes."""
    data = b"hello attachment"
    ref = blobs.put(data, "text/plain")
    digest = hashlib.sha256(data).hexdigest()
    assert ref.attachment_id == digest
    assert ref.uri == f"lash-attachment://sha256/{digest}" == attachment_uri(digest)
    assert (ref.size, ref.media_type) == (len(data), "text/plain")
    assert blobs.get(digest) == data


def test_empty_bytes_are_a_valid_attachment(blobs: BlobStore) -> None:
    """Zero-length content is stored and read back like any other."""
    ref = blobs.put(b"", "application/octet-stream")
    assert ref.size == 0
    assert blobs.get(ref.attachment_id) == b""
    info = blobs.head(ref.attachment_id)
    assert info is not None and info.size == 0


def test_missing_blob_reads_raise_attachment_not_found(blobs: BlobStore) -> None:
    """get of an unknown id raises AttachmentNotFound; head returns None."""
    missing = "0" * 64
    with pytest.raises(AttachmentNotFound):
        blobs.get(missing)
    assert blobs.head(missing) is None


def test_delete_is_idempotent_and_list_reports_mtimes(blobs: BlobStore) -> None:
    """list yields every blob with size and mtime; delete twice is fine."""
    a = blobs.put(b"a", "text/plain").attachment_id
    b = blobs.put(b"bb", "text/plain").attachment_id
    listed = {info.attachment_id: info for info in blobs.list()}
    assert set(listed) == {a, b}
    assert listed[b].size == 2 and listed[b].last_modified_ms > 0
    blobs.delete(a)
    blobs.delete(a)
    assert [info.attachment_id for info in blobs.list()] == [b]


def test_put_of_existing_content_refreshes_its_mtime(blobs: BlobStore, tmp_path: Path) -> None:
    """A dedup put makes the blob look fresh again to GC's grace window."""
    ref = blobs.put(b"same", "text/plain")
    if isinstance(blobs, FilesystemBlobStore):
        os.utime(blobs.path_for(ref.attachment_id), ns=(10**18, 10**18 // 2))
    else:
        blobs._blobs[ref.attachment_id] = (b"same", 1)  # type: ignore[attr-defined]
    old = blobs.head(ref.attachment_id)
    assert old is not None
    blobs.put(b"same", "text/plain")
    new = blobs.head(ref.attachment_id)
    assert new is not None and new.last_modified_ms > old.last_modified_ms


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_ids_that_are_not_sha256_hex_are_refused(blobs: BlobStore, bad_id: str) -> None:
    """Traversal, non-hex and wrong-length ids raise ValidationError on every operation."""
    for operation in (blobs.get, blobs.head, blobs.delete):
        with pytest.raises(ValidationError):
            operation(bad_id)


def test_filesystem_refuses_bad_ids_before_touching_the_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No path is built or opened for a bad id."""
    store = FilesystemBlobStore(tmp_path / "blobs")

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the filesystem was touched")

    for name in ("stat", "read_bytes", "unlink", "exists", "open"):
        monkeypatch.setattr(Path, name, forbidden)
    for bad_id in BAD_IDS:
        for operation in (store.get, store.head, store.delete, store.path_for):
            with pytest.raises(ValidationError):
                operation(bad_id)


def test_non_bytes_data_is_refused(blobs: BlobStore) -> None:
    """A str is not silently encoded: put raises ValidationError."""
    with pytest.raises(ValidationError):
        blobs.put("text", "text/plain")  # type: ignore[arg-type]


def test_filesystem_layout_and_list_ignore_foreign_files(tmp_path: Path) -> None:
    """Blobs live at root/sha256/<first2>/<id>; temp and stray files are not listed."""
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"layout", "text/plain")
    path = tmp_path / "sha256" / ref.attachment_id[:2] / ref.attachment_id
    assert path.read_bytes() == b"layout"
    (path.parent / f".{ref.attachment_id[:16]}.abc.tmp").write_bytes(b"partial")
    (path.parent / "README").write_text("not a blob")
    (tmp_path / "sha256" / "zz").mkdir()
    assert [i.attachment_id for i in store.list()] == [ref.attachment_id]


def test_filesystem_trash_hides_a_blob_until_restored_or_purged(tmp_path: Path) -> None:
    """trash moves a blob out of sight (listed only as trash); restore brings it back."""
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"aside", "text/plain")
    trashed = store.trash(ref.attachment_id)
    assert trashed is not None and trashed.attachment_id == ref.attachment_id
    assert store.head(ref.attachment_id) is None
    assert list(store.list()) == []
    assert list(store.list_trash()) == [trashed]
    store.restore(trashed)
    assert store.get(ref.attachment_id) == b"aside"
    assert list(store.list_trash()) == []
    # Settling a trash name twice is harmless.
    store.restore(trashed)
    store.purge(trashed)
    assert store.get(ref.attachment_id) == b"aside"
    assert store.trash(hashlib.sha256(b"never stored").hexdigest()) is None


def test_filesystem_restore_keeps_a_copy_put_meanwhile(tmp_path: Path) -> None:
    """A put after trash stores a new file; restore keeps that file and drops the trash."""
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"twice", "text/plain")
    trashed = store.trash(ref.attachment_id)
    assert trashed is not None
    store.put(b"twice", "text/plain")
    fresh = store.path_for(ref.attachment_id).stat().st_ino
    store.restore(trashed)
    assert store.path_for(ref.attachment_id).stat().st_ino == fresh
    assert list(store.list_trash()) == []


def test_filesystem_purge_deletes_only_the_trash_name(tmp_path: Path) -> None:
    """purge removes the trashed bytes, never a blob a put stored after the trash."""
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"gone", "text/plain")
    trashed = store.trash(ref.attachment_id)
    assert trashed is not None
    store.purge(trashed)
    assert store.head(ref.attachment_id) is None and list(store.list_trash()) == []
    again = store.trash(store.put(b"gone", "text/plain").attachment_id)
    assert again is not None
    store.put(b"gone", "text/plain")
    store.purge(again)
    assert store.get(ref.attachment_id) == b"gone"


def test_filesystem_refuses_trash_names_it_did_not_make(tmp_path: Path) -> None:
    """restore and purge accept only `<id>.<12 hex>.trash` names of that very id."""
    store = FilesystemBlobStore(tmp_path)
    ref = store.put(b"x", "text/plain")
    for name in ("../../etc/passwd", ref.attachment_id, f"{ref.attachment_id}.zz.trash"):
        with pytest.raises(ValidationError):
            store.purge(TrashedBlob(ref.attachment_id, name, 0))
        with pytest.raises(ValidationError):
            store.restore(TrashedBlob(ref.attachment_id, name, 0))
    assert store.get(ref.attachment_id) == b"x"


def test_filesystem_list_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    """A store that never stored anything lists nothing (and creates nothing)."""
    store = FilesystemBlobStore(tmp_path / "never-created")
    assert list(store.list()) == []
    assert not (tmp_path / "never-created").exists()


def test_concurrent_puts_of_the_same_content_from_processes_leave_one_intact_blob(
    tmp_path: Path,
) -> None:
    """Several processes putting the same bytes at once leave one whole blob and no temp file."""
    root = tmp_path / "blobs"
    go_file = tmp_path / "go"
    workers = [start_worker("put-many", str(root), str(go_file), "15") for _ in range(5)]
    try:
        go_file.touch()
        for proc in workers:
            _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr.decode()
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    store = FilesystemBlobStore(root)
    expected = hashlib.sha256(_worker.SHARED).hexdigest()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files == [store.path_for(expected)]
    assert store.get(expected) == _worker.SHARED


@pytest.mark.parametrize(
    ("url", "kind"),
    [("memory://", InMemoryBlobStore), ("file:///var/lib/lash/attachments", FilesystemBlobStore)],
)
def test_blob_store_from_url_picks_the_backend(url: str, kind: type) -> None:
    """file:///path → filesystem, memory:// → in-memory, with their durability tiers."""
    store = blob_store_from_url(url)
    assert isinstance(store, kind)
    assert store.durability_tier == ("inline" if kind is InMemoryBlobStore else "durable")


def test_blob_store_from_url_keeps_the_path(tmp_path: Path) -> None:
    """A file URL's (percent-decoded) path becomes the store root."""
    store = blob_store_from_url((tmp_path / "with space").as_uri())
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "with space"


@pytest.mark.parametrize(
    "url",
    ["s3://bucket/x", "file://remote-host/path", "file:relative", "/abs/path", "", "memory://x"],
)
def test_blob_store_from_url_refuses_unknown_urls(url: str) -> None:
    """Anything else is an InvalidEnvironment naming LASH_ATTACHMENTS_URL."""
    with pytest.raises(InvalidEnvironment, match="LASH_ATTACHMENTS_URL"):
        blob_store_from_url(url)
