"""`FilesystemBlobStore`: the durable tier on a local or mounted folder.

Layout: `<root>/sha256/<first two hex>/<attachment id>`. Media types are not kept: the id is the
content hash, so two puts of the same bytes with different types would race on any sidecar, and
the type travels with the reference (message, tool result) anyway.

A put stages the bytes in a unique temp file next to the target, fsyncs it, renames it into
place and fsyncs the directory: readers see the old blob or the whole new one, never a part, and
a crash leaves at worst a stray `.tmp` file that `list()` ignores.

Blob files are created owner-only (0600, as `mkstemp` makes them): attachments may be private,
so every worker of a fleet sharing the folder is expected to run as the same OS user.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lash_tasks.attachments.blobs import BlobInfo, BlobRef
from lash_tasks.attachments.ids import DurabilityTier, as_bytes, check_attachment_id
from lash_tasks.errors import AttachmentNotFound, StoreUnavailable

_HEX = frozenset("0123456789abcdef")
TEMP_SUFFIX = ".tmp"


class FilesystemBlobStore:
    durability_tier: DurabilityTier = "durable"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._blob_root = self.root / "sha256"

    def path_for(self, attachment_id: str) -> Path:
        """Where a blob lives. The id is validated first, so the path stays under the root."""
        check_attachment_id(attachment_id)
        return self._blob_root / attachment_id[:2] / attachment_id

    def put(self, data: bytes, media_type: str) -> BlobRef:
        data = as_bytes(data)
        ref = BlobRef.for_bytes(data, media_type)
        target = self.path_for(ref.attachment_id)
        try:
            self._ensure_dir(target.parent)
            fd, temp = tempfile.mkstemp(
                prefix=f".{ref.attachment_id[:16]}.", suffix=TEMP_SUFFIX, dir=target.parent
            )
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                # Replacing even when the blob exists refreshes its mtime, so a GC that is about
                # to reclaim the old copy sees a fresh blob, and a damaged copy heals.
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            _fsync_dir(target.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write attachment {ref.attachment_id}: {exc.strerror or exc}",
                attachment_id=ref.attachment_id,
            ) from exc
        return ref

    def get(self, attachment_id: str) -> bytes:
        path = self.path_for(attachment_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise AttachmentNotFound(
                f"attachment {attachment_id} is not stored", attachment_id=attachment_id
            ) from None
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read attachment {attachment_id}: {exc.strerror or exc}",
                attachment_id=attachment_id,
            ) from exc

    def head(self, attachment_id: str) -> BlobInfo | None:
        path = self.path_for(attachment_id)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return BlobInfo(attachment_id, stat.st_size, stat.st_mtime_ns // 1_000_000)

    def delete(self, attachment_id: str) -> None:
        path = self.path_for(attachment_id)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def list(self) -> Iterator[BlobInfo]:
        for prefix in _scandir(self._blob_root):
            if len(prefix.name) != 2 or not _is_hex(prefix.name) or not prefix.is_dir():
                continue
            for entry in _scandir(Path(prefix.path)):
                name = entry.name
                # Temp files, sidecars of other tools and misplaced names are not blobs.
                if len(name) != 64 or not _is_hex(name) or name[:2] != prefix.name:
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield BlobInfo(name, stat.st_size, stat.st_mtime_ns // 1_000_000)

    def _ensure_dir(self, directory: Path) -> None:
        missing: list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            # The new directory's own entry must be durable too, not only the file inside it.
            _fsync_dir(created.parent)


def _is_hex(name: str) -> bool:
    return all(c in _HEX for c in name)


def _scandir(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
