"""`FilesystemBlobStore`: the durable tier on a local or mounted folder.

Layout: `<root>/sha256/<first two hex>/<attachment id>`. Media types are not kept: the id is the
content hash, so two puts of the same bytes with different types would race on any sidecar, and
the type travels with the reference (message, tool result) anyway.

A put stages the bytes in a unique temp file next to the target, fsyncs it, renames it into
place and fsyncs the directory: readers see the old blob or the whole new one, never a part, and
a crash leaves at worst a stray `.tmp` file that `list()` ignores.

Garbage collection deletes in two phases (`TrashingBlobStore`): the blob is renamed to
`<id>.<random>.trash` in its own directory (a rename within one directory is atomic), the
manifest is probed again, and only then is the trash unlinked or linked back into place.

Blob files are created owner-only (0600, as `mkstemp` makes them): attachments may be private,
so every worker of a fleet sharing the folder is expected to run as the same OS user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from lash_tasks.attachments.blobs import BlobInfo, BlobRef, TrashedBlob
from lash_tasks.attachments.values import DurabilityTier, as_bytes
from lash_tasks.errors import AttachmentNotFound, StoreUnavailable, ValidationError
from lash_tasks.machine.ids import check_attachment_id

_HEX = frozenset("0123456789abcdef")
TEMP_SUFFIX = ".tmp"
TRASH_SUFFIX = ".trash"
_TRASH_NAME = re.compile(r"([0-9a-f]{64})\.[0-9a-f]{12}\.trash")
# Errors of a filesystem that cannot hard-link (some network and FUSE mounts).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


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

    def trash(self, attachment_id: str) -> TrashedBlob | None:
        target = self.path_for(attachment_id)
        name = f"{attachment_id}.{uuid.uuid4().hex[:12]}{TRASH_SUFFIX}"
        try:
            os.rename(target, target.parent / name)
            # A rename keeps the mtime: it still says when a put last wrote these bytes.
            stat = (target.parent / name).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable("move to the trash", attachment_id, exc) from exc
        return TrashedBlob(attachment_id, name, stat.st_mtime_ns // 1_000_000)

    def restore(self, trashed: TrashedBlob) -> None:
        source = self._trash_path(trashed)
        target = self.path_for(trashed.attachment_id)
        try:
            try:
                # A link never replaces: a put that stored the content meanwhile keeps its
                # own (fresher, possibly healed) copy.
                os.link(source, target)
            except FileExistsError:
                pass
            except FileNotFoundError:
                return  # another collector settled this trash already
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                if not target.exists():
                    os.replace(source, target)
            _fsync_dir(target.parent)
            with contextlib.suppress(FileNotFoundError):
                source.unlink()
        except OSError as exc:
            raise _unavailable("restore", trashed.attachment_id, exc) from exc

    def purge(self, trashed: TrashedBlob) -> None:
        source = self._trash_path(trashed)
        try:
            source.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _unavailable("delete", trashed.attachment_id, exc) from exc

    def list_trash(self) -> Iterator[TrashedBlob]:
        for prefix in _scandir(self._blob_root):
            if len(prefix.name) != 2 or not _is_hex(prefix.name) or not prefix.is_dir():
                continue
            for entry in _scandir(Path(prefix.path)):
                match = _TRASH_NAME.fullmatch(entry.name)
                if match is None or match.group(1)[:2] != prefix.name:
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield TrashedBlob(match.group(1), entry.name, stat.st_mtime_ns // 1_000_000)

    def _trash_path(self, trashed: TrashedBlob) -> Path:
        match = _TRASH_NAME.fullmatch(trashed.trash_name)
        if match is None or match.group(1) != trashed.attachment_id:
            raise ValidationError(f"{trashed.trash_name!r:.100} is not a trash name of this store")
        return self.path_for(trashed.attachment_id).parent / trashed.trash_name

    def _ensure_dir(self, directory: Path) -> None:
        missing: list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            # The new directory's own entry must be durable too, not only the file inside it.
            _fsync_dir(created.parent)


def _unavailable(action: str, attachment_id: str, exc: OSError) -> StoreUnavailable:
    return StoreUnavailable(
        f"cannot {action} attachment {attachment_id}: {exc.strerror or exc}",
        attachment_id=attachment_id,
    )


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
