"""Layer 2 facade: a session's view of the shared blob store, guarded by the manifest.

Blobs are shared by content across sessions, so knowing (or guessing) an id must not be enough
to read one: `get` answers only ids this session holds a manifest row for. `put` records the
write-ahead intent *before* the bytes land, so a crash anywhere after the intent leaves a row
that garbage collection can reconcile, and a failed intent means the bytes never land at all.
"""

from __future__ import annotations

import threading
from typing import Protocol

from lash_tasks.attachments.blobs import BlobStore
from lash_tasks.attachments.manifest import AttachmentManifest
from lash_tasks.attachments.values import (
    DEFAULT_MEDIA_TYPE,
    OwnerKind,
    as_bytes,
    attachment_uri,
    check_media_type,
)
from lash_tasks.errors import AttachmentNotFound, StoreUnavailable
from lash_tasks.machine.ids import attachment_id_for, check_attachment_id
from lash_tasks.machine.messages import AttachmentContent


class SessionAttachmentStore(Protocol):
    """What the runtime and tools use. Satisfies `lash_tasks.tools.contract.AttachmentSink`."""

    session_id: str

    def put(self, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str: ...

    def get(self, attachment_id: str) -> bytes: ...

    def read(self, attachment_id: str, max_bytes: int | None = None) -> AttachmentContent: ...

    def delete(self, attachment_id: str) -> None: ...

    def list(self) -> list[str]: ...


class SessionAttachments:
    """The durable facade: every reference is a manifest row in the session store."""

    def __init__(
        self,
        store: AttachmentManifest,
        blobs: BlobStore,
        session_id: str,
        owner_kind: OwnerKind | None = None,
        owner_id: str | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.session_id = session_id
        self.owner_kind: OwnerKind | None = owner_kind
        self.owner_id = owner_id

    def put(self, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        """Store `data` for this session and return its attachment id."""
        data = as_bytes(data)
        check_media_type(media_type)
        attachment_id = attachment_id_for(data)
        self.store.record_intent(
            self.session_id,
            attachment_id,
            attachment_uri(attachment_id),
            self.owner_kind,
            self.owner_id,
            media_type,
        )
        ref = self.blobs.put(data, media_type)
        if ref.attachment_id != attachment_id:
            # The intent names the precomputed id; a backend that disagrees would leave the
            # stored bytes unreferenced and the reference dangling.
            raise StoreUnavailable(
                f"blob store stored attachment as {ref.attachment_id}, expected {attachment_id}",
                attachment_id=attachment_id,
            )
        return attachment_id

    def get(self, attachment_id: str) -> bytes:
        """The bytes of an attachment this session references, else `AttachmentNotFound`."""
        check_attachment_id(attachment_id)
        if not self.store.holds_ref(self.session_id, attachment_id):
            raise AttachmentNotFound(
                f"session {self.session_id!r} has no attachment {attachment_id}",
                session_id=self.session_id,
                attachment_id=attachment_id,
            )
        return self.blobs.get(attachment_id)

    def read(self, attachment_id: str, max_bytes: int | None = None) -> AttachmentContent:
        """Like `get`, with the media type the session's put named; content larger than
        `max_bytes` is not read at all (its size and type still are)."""
        check_attachment_id(attachment_id)
        row = self.store.row(self.session_id, attachment_id)
        if row is None:
            raise AttachmentNotFound(
                f"session {self.session_id!r} has no attachment {attachment_id}",
                session_id=self.session_id,
                attachment_id=attachment_id,
            )
        return _read(self.blobs, attachment_id, row.media_type, max_bytes)

    def delete(self, attachment_id: str) -> None:
        """Forget this session's reference; the bytes go when no session references them."""
        check_attachment_id(attachment_id)
        self.store.forget_ref(self.session_id, attachment_id)

    def list(self) -> list[str]:
        return [row.attachment_id for row in self.store.rows(self.session_id)]


class InlineSessionAttachments:
    """For an inline (in-memory) session store: no manifest rows, nothing for GC to reconcile.

    Like lash's ephemeral runtimes, this hands puts and gets straight to the blob store: an
    inline store dies with its process, so there is no crash to recover from, and reads are
    not isolated between the sessions of that one process (a wrapper is rebuilt per step, so
    it cannot remember which ids its session put). `list` and `delete` cover the ids put
    through this wrapper only, and `delete` never removes shared bytes.
    """

    def __init__(self, blobs: BlobStore, session_id: str) -> None:
        self.blobs = blobs
        self.session_id = session_id
        self._lock = threading.Lock()
        self._ids: dict[str, None] = {}

    def put(self, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        check_media_type(media_type)
        attachment_id = self.blobs.put(as_bytes(data), media_type).attachment_id
        with self._lock:
            self._ids[attachment_id] = None
        return attachment_id

    def get(self, attachment_id: str) -> bytes:
        return self.blobs.get(check_attachment_id(attachment_id))

    def read(self, attachment_id: str, max_bytes: int | None = None) -> AttachmentContent:
        # Blob stores keep no media types and there is no manifest row to ask: unknown.
        return _read(self.blobs, check_attachment_id(attachment_id), None, max_bytes)

    def delete(self, attachment_id: str) -> None:
        check_attachment_id(attachment_id)
        with self._lock:
            self._ids.pop(attachment_id, None)

    def list(self) -> list[str]:
        with self._lock:
            return sorted(self._ids)


def _read(
    blobs: BlobStore, attachment_id: str, media_type: str | None, max_bytes: int | None
) -> AttachmentContent:
    if max_bytes is not None:
        info = blobs.head(attachment_id)
        if info is None:
            raise AttachmentNotFound(
                f"attachment {attachment_id} is not stored", attachment_id=attachment_id
            )
        if info.size > max_bytes:
            return AttachmentContent(attachment_id, media_type, info.size)
    data = blobs.get(attachment_id)
    return AttachmentContent(attachment_id, media_type, len(data), data)


def attachments_for(
    store: AttachmentManifest,
    blobs: BlobStore,
    session_id: str,
    owner_kind: OwnerKind | None = None,
    owner_id: str | None = None,
) -> SessionAttachmentStore:
    """The attachment view a runtime of `session_id` should use.

    A durable session store gets the manifest-guarded facade; an inline one gets the plain
    wrapper, because manifest rows in a store that dies with the process protect nothing.
    """
    if store.durability_tier == "durable":
        return SessionAttachments(store, blobs, session_id, owner_kind, owner_id)
    return InlineSessionAttachments(blobs, session_id)
