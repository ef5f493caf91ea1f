"""Attachments: content-addressed blobs, the session manifest facade, and garbage collection."""

from lash_tasks.attachments.backends import blob_store_from_url
from lash_tasks.attachments.blobs import (
    BlobInfo,
    BlobRef,
    BlobStore,
    TrashedBlob,
    TrashingBlobStore,
)
from lash_tasks.attachments.filesystem import FilesystemBlobStore
from lash_tasks.attachments.gc import ReclaimReport, reclaim_unreferenced_attachments
from lash_tasks.attachments.manifest import AttachmentManifest, ManifestEntry, ManifestRoots
from lash_tasks.attachments.memory import InMemoryBlobStore
from lash_tasks.attachments.session_store import (
    InlineSessionAttachments,
    SessionAttachments,
    SessionAttachmentStore,
    attachments_for,
)
from lash_tasks.attachments.values import (
    DEFAULT_MEDIA_TYPE,
    URI_PREFIX,
    DurabilityTier,
    OwnerKind,
    attachment_uri,
)

__all__ = [
    "DEFAULT_MEDIA_TYPE",
    "URI_PREFIX",
    "AttachmentManifest",
    "BlobInfo",
    "BlobRef",
    "BlobStore",
    "DurabilityTier",
    "FilesystemBlobStore",
    "InMemoryBlobStore",
    "InlineSessionAttachments",
    "ManifestEntry",
    "ManifestRoots",
    "OwnerKind",
    "ReclaimReport",
    "SessionAttachmentStore",
    "SessionAttachments",
    "TrashedBlob",
    "TrashingBlobStore",
    "attachment_uri",
    "attachments_for",
    "blob_store_from_url",
    "reclaim_unreferenced_attachments",
]
