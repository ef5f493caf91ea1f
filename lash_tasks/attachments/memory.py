"""`InMemoryBlobStore`: the inline tier, for embedded use and tests. Dies with the process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from lash_tasks.attachments.blobs import BlobInfo, BlobRef
from lash_tasks.attachments.values import DurabilityTier, as_bytes
from lash_tasks.errors import AttachmentNotFound
from lash_tasks.machine.ids import check_attachment_id


class InMemoryBlobStore:
    durability_tier: DurabilityTier = "inline"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, tuple[bytes, int]] = {}

    def put(self, data: bytes, media_type: str) -> BlobRef:
        data = as_bytes(data)
        ref = BlobRef.for_bytes(data, media_type)
        with self._lock:
            self._blobs[ref.attachment_id] = (data, _now_ms())
        return ref

    def get(self, attachment_id: str) -> bytes:
        check_attachment_id(attachment_id)
        with self._lock:
            entry = self._blobs.get(attachment_id)
        if entry is None:
            raise AttachmentNotFound(
                f"attachment {attachment_id} is not stored", attachment_id=attachment_id
            )
        return entry[0]

    def head(self, attachment_id: str) -> BlobInfo | None:
        check_attachment_id(attachment_id)
        with self._lock:
            entry = self._blobs.get(attachment_id)
        return None if entry is None else BlobInfo(attachment_id, len(entry[0]), entry[1])

    def delete(self, attachment_id: str) -> None:
        check_attachment_id(attachment_id)
        with self._lock:
            self._blobs.pop(attachment_id, None)

    def list(self) -> Iterator[BlobInfo]:
        # A snapshot, so callers may delete while iterating.
        with self._lock:
            infos = [BlobInfo(k, len(v[0]), v[1]) for k, v in self._blobs.items()]
        return iter(infos)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
