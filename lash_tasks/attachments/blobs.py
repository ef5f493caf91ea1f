"""Layer 1: the content-addressed blob store contract.

Blobs are flat and shared by content across sessions; who may read a blob, and whether it is
still needed, is the manifest's business (layer 2), never the blob store's. A backend only has to
store bytes under their sha256, report last-modified times, and delete idempotently — so an
S3-compatible backend is one more class plus a URL scheme in `backends.py`.

A backend that can move a blob aside atomically (a rename) also satisfies `TrashingBlobStore`;
garbage collection then deletes in two phases and never loses bytes a put stored meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lash_tasks.attachments.values import DurabilityTier, attachment_uri
from lash_tasks.machine.ids import attachment_id_for


@dataclass(frozen=True)
class BlobRef:
    """What a put returns. `media_type` echoes the caller: backends need not keep it."""

    attachment_id: str
    uri: str
    size: int
    media_type: str

    @classmethod
    def for_bytes(cls, data: bytes, media_type: str) -> BlobRef:
        attachment_id = attachment_id_for(data)
        return cls(attachment_id, attachment_uri(attachment_id), len(data), media_type)


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob as listed or probed. `last_modified_ms` is epoch ms on the backend's clock."""

    attachment_id: str
    size: int
    last_modified_ms: int


@runtime_checkable
class BlobStore(Protocol):
    @property
    def durability_tier(self) -> DurabilityTier: ...

    def put(self, data: bytes, media_type: str) -> BlobRef:
        """Store `data` under its sha256. Always writes, so an existing blob's mtime is refreshed
        (garbage collection's grace window then sees it as fresh). Readers never see a partial
        blob."""
        ...

    def get(self, attachment_id: str) -> bytes:
        """The bytes, or `AttachmentNotFound`."""
        ...

    def head(self, attachment_id: str) -> BlobInfo | None: ...

    def delete(self, attachment_id: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        ...

    def list(self) -> Iterator[BlobInfo]:
        """Every stored blob. May miss or include blobs put or deleted while it runs."""
        ...


@dataclass(frozen=True)
class TrashedBlob:
    """A blob moved aside by garbage collection; `trash_name` names it within the backend."""

    attachment_id: str
    trash_name: str
    last_modified_ms: int


@runtime_checkable
class TrashingBlobStore(Protocol):
    """The two-phase delete garbage collection uses when a backend offers it."""

    def trash(self, attachment_id: str) -> TrashedBlob | None:
        """Atomically move the blob to a fresh trash name (None: no blob). From now on a put
        of the same content stores a new blob instead of refreshing this one."""
        ...

    def restore(self, trashed: TrashedBlob) -> None:
        """Put the trashed bytes back, unless a newer put already stored them; then drop
        the trash. A trash name that is already gone is not an error."""
        ...

    def purge(self, trashed: TrashedBlob) -> None:
        """Delete the trashed bytes for good; a missing trash name is not an error."""
        ...

    def list_trash(self) -> Iterator[TrashedBlob]:
        """Every blob in the trash, e.g. left by a collector that crashed mid-delete."""
        ...
