"""Layer 3: reclaim blobs that no session references any more.

1. Forget dead intents (one conditional DELETE in the store).
2. Roots = every attachment id with a live manifest row.
3. Sweep the blob store. A blob is deleted only if it is not a root, was last modified before the
   grace window (in the listing *and* in a fresh `head`, since a put refreshes the mtime), and a
   targeted probe finds no live reference. After deleting, probe again: a put that recorded its
   intent in between is reported in `deleted_while_referenced` (its own write, which follows its
   intent, usually puts the bytes back; the report says where to look if not).

Per-blob failures are recorded and the sweep goes on. Assumes the blob store belongs to this
deployment alone: blobs another deployment's manifest references look unreferenced here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.attachments.blobs import BlobStore
from lash_tasks.attachments.manifest import AttachmentManifest
from lash_tasks.errors import ValidationError

log = logging.getLogger(__name__)


@dataclass
class ReclaimReport:
    scanned: int = 0
    reclaimed: int = 0
    failed_ids: list[str] = field(default_factory=list)
    deleted_while_referenced: list[str] = field(default_factory=list)
    forgotten_intents: int = 0
    missing_blobs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "reclaimed": self.reclaimed,
            "failed_ids": list(self.failed_ids),
            "deleted_while_referenced": list(self.deleted_while_referenced),
            "forgotten_intents": self.forgotten_intents,
            "missing_blobs": list(self.missing_blobs),
        }


def reclaim_unreferenced_attachments(
    store: AttachmentManifest,
    blobs: BlobStore,
    grace_ms: int,
    now_ms: int | None = None,
) -> ReclaimReport:
    """Run one GC pass. `now_ms` (tests, replays) replaces both the database and blob clocks."""
    if grace_ms < 0:
        raise ValidationError("attachment GC grace window must not be negative")
    # Intents are stamped by the database clock, blob mtimes by the blob store's: compare each
    # against its own clock unless the caller pins one.
    manifest_cutoff = (store.manifest_now_ms() if now_ms is None else now_ms) - grace_ms
    blob_cutoff = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) - grace_ms

    report = ReclaimReport()
    report.forgotten_intents = store.forget_dead_intents(manifest_cutoff)
    roots = store.live_attachment_ids(manifest_cutoff)
    seen: set[str] = set()
    for info in blobs.list():
        report.scanned += 1
        seen.add(info.attachment_id)
        if info.attachment_id in roots or info.last_modified_ms >= blob_cutoff:
            continue
        try:
            if _reclaim_one(store, blobs, info.attachment_id, manifest_cutoff, blob_cutoff, report):
                report.reclaimed += 1
        except Exception:
            log.exception("attachment GC could not reclaim %s", info.attachment_id)
            report.failed_ids.append(info.attachment_id)
    _report_missing(blobs, roots - seen, report)
    log.info("attachment GC: %s", report.to_dict())
    return report


def _reclaim_one(
    store: AttachmentManifest,
    blobs: BlobStore,
    attachment_id: str,
    manifest_cutoff: int,
    blob_cutoff: int,
    report: ReclaimReport,
) -> bool:
    fresh = blobs.head(attachment_id)
    if fresh is None or fresh.last_modified_ms >= blob_cutoff:
        return False
    if store.has_live_ref(attachment_id, manifest_cutoff):
        return False
    blobs.delete(attachment_id)
    if store.has_live_ref(attachment_id, manifest_cutoff):
        log.warning("attachment %s was referenced again while GC deleted it", attachment_id)
        report.deleted_while_referenced.append(attachment_id)
    return True


def _report_missing(blobs: BlobStore, unseen_roots: set[str], report: ReclaimReport) -> None:
    # The listing may predate a put that finished since, so confirm with a head before telling.
    for attachment_id in sorted(unseen_roots):
        try:
            if blobs.head(attachment_id) is None:
                report.missing_blobs.append(attachment_id)
        except Exception:
            log.exception("attachment GC could not check %s", attachment_id)
            report.failed_ids.append(attachment_id)
