"""Layer 3: reclaim blobs that no session references any more.

1. Forget dead intents (one conditional DELETE in the store).
2. Roots = every attachment id with a live manifest row.
3. Settle the trash a crashed collector left (two-phase stores): restore what is referenced
   or fresh, purge the rest.
4. Sweep the blob store. A blob is deleted only if it is not a root, was last modified before the
   grace window (in the listing *and* in a fresh `head`, since a put refreshes the mtime), and a
   targeted probe finds no live reference.

Deleting races a put of the same content by another session. A put records its intent (I),
then writes its bytes (B); a backend that can trash atomically (`TrashingBlobStore`, the
filesystem) is deleted as probe (P1), trash (T), probe again (P2), then purge or restore (R):

- I before P1: P1 sees the reference; nothing is touched.
- P1 < I < P2, B before T: T moves the put's own bytes aside, P2 sees the reference, R
  restores them.
- P1 < I < P2, B after T: B stores a fresh blob; R keeps it and drops the trash (restore
  never replaces a blob that is there).
- I after P2: B follows I, so it lands after T and stores a fresh blob; R purges only the
  trash name, never that blob.
- a put with no intent (B only) after the freshness check: the trashed file's mtime is fresh
  again, so R restores it, as the grace window promises.
A collector that dies between T and R leaves a trash name, settled by step 3 of the next run.

A backend without atomic trash is deleted directly and probed afterwards: a put that recorded
its intent in between is reported in `deleted_while_referenced` (its own write, which follows
its intent, usually puts the bytes back; the report says where to look if not).

Per-blob failures are recorded and the sweep goes on. Assumes the blob store belongs to this
deployment alone: blobs another deployment's manifest references look unreferenced here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.attachments.blobs import BlobStore, TrashedBlob, TrashingBlobStore
from lash_tasks.attachments.manifest import ManifestRoots
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
    restored: list[str] = field(default_factory=list)
    purged_trash: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "reclaimed": self.reclaimed,
            "failed_ids": list(self.failed_ids),
            "deleted_while_referenced": list(self.deleted_while_referenced),
            "forgotten_intents": self.forgotten_intents,
            "missing_blobs": list(self.missing_blobs),
            "restored": list(self.restored),
            "purged_trash": self.purged_trash,
        }


def reclaim_unreferenced_attachments(
    store: ManifestRoots,
    blobs: BlobStore,
    grace_ms: int,
    now_ms: int | None = None,
) -> ReclaimReport:
    """Run one GC pass. `now_ms` (tests, replays) replaces both the database and blob clocks."""
    if grace_ms < 0:
        raise ValidationError("attachment GC grace window must not be negative")
    # Intents are stamped by the database clock, blob mtimes by the blob store's: compare each
    # against its own clock unless the caller pins one.
    manifest_cutoff = (store.now_ms() if now_ms is None else now_ms) - grace_ms
    blob_cutoff = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) - grace_ms

    report = ReclaimReport()
    report.forgotten_intents = store.forget_dead_intents(manifest_cutoff)
    if isinstance(blobs, TrashingBlobStore):
        _settle_stray_trash(store, blobs, manifest_cutoff, blob_cutoff, report)
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
    store: ManifestRoots,
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
    if isinstance(blobs, TrashingBlobStore):
        trashed = blobs.trash(attachment_id)
        if trashed is None:
            return False  # gone meanwhile (another collector)
        return _settle(store, blobs, trashed, manifest_cutoff, blob_cutoff, report)
    blobs.delete(attachment_id)
    if store.has_live_ref(attachment_id, manifest_cutoff):
        log.warning("attachment %s was referenced again while GC deleted it", attachment_id)
        report.deleted_while_referenced.append(attachment_id)
    return True


def _settle(
    store: ManifestRoots,
    blobs: TrashingBlobStore,
    trashed: TrashedBlob,
    manifest_cutoff: int,
    blob_cutoff: int,
    report: ReclaimReport,
) -> bool:
    """Purge trashed bytes nobody needs, else put them back. True if purged."""
    try:
        keep = trashed.last_modified_ms >= blob_cutoff or store.has_live_ref(
            trashed.attachment_id, manifest_cutoff
        )
    except BaseException:
        # Unsure (the probe failed): the bytes go back; a later run decides again.
        blobs.restore(trashed)
        raise
    if keep:
        blobs.restore(trashed)
        log.info("attachment %s was referenced again during GC; restored", trashed.attachment_id)
        report.restored.append(trashed.attachment_id)
        return False
    blobs.purge(trashed)
    return True


def _settle_stray_trash(
    store: ManifestRoots,
    blobs: TrashingBlobStore,
    manifest_cutoff: int,
    blob_cutoff: int,
    report: ReclaimReport,
) -> None:
    # A concurrent collector's trash may be listed too; settling it by the same rule is safe,
    # and whichever of the two comes second finds the trash name gone and does nothing.
    for trashed in list(blobs.list_trash()):
        try:
            if _settle(store, blobs, trashed, manifest_cutoff, blob_cutoff, report):
                report.purged_trash += 1
        except Exception:
            log.exception("attachment GC could not settle trashed %s", trashed.attachment_id)
            report.failed_ids.append(trashed.attachment_id)


def _report_missing(blobs: BlobStore, unseen_roots: set[str], report: ReclaimReport) -> None:
    # The listing may predate a put that finished since, so confirm with a head before telling.
    for attachment_id in sorted(unseen_roots):
        try:
            if blobs.head(attachment_id) is None:
                report.missing_blobs.append(attachment_id)
        except Exception:
            log.exception("attachment GC could not check %s", attachment_id)
            report.failed_ids.append(attachment_id)
