"""Pick the blob store named by `LASH_ATTACHMENTS_URL`.

A new backend (say `s3://bucket/prefix`) is a class satisfying `BlobStore` plus one entry in
`_BACKENDS`; nothing that holds a `BlobStore` changes.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import SplitResult, unquote, urlsplit

from lash_tasks.attachments.blobs import BlobStore
from lash_tasks.attachments.filesystem import FilesystemBlobStore
from lash_tasks.attachments.memory import InMemoryBlobStore
from lash_tasks.errors import InvalidEnvironment

_EXPECTED = "expected file:///absolute/path or memory://"


def _filesystem(url: SplitResult) -> BlobStore:
    if url.netloc not in ("", "localhost") or not url.path.startswith("/"):
        raise InvalidEnvironment(
            f"LASH_ATTACHMENTS_URL must name an absolute local path ({_EXPECTED})"
        )
    return FilesystemBlobStore(unquote(url.path))


def _memory(url: SplitResult) -> BlobStore:
    if url.netloc or url.path not in ("", "/"):
        raise InvalidEnvironment(f"LASH_ATTACHMENTS_URL memory:// takes no path ({_EXPECTED})")
    return InMemoryBlobStore()


_BACKENDS: dict[str, Callable[[SplitResult], BlobStore]] = {
    "file": _filesystem,
    "memory": _memory,
}


def blob_store_from_url(url: str) -> BlobStore:
    """Build the blob store for `url`; anything unknown raises `InvalidEnvironment`."""
    try:
        parsed = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parsed = None
    factory = _BACKENDS.get(parsed.scheme) if parsed is not None else None
    if parsed is None or factory is None:
        raise InvalidEnvironment(
            f"LASH_ATTACHMENTS_URL {url!r:.200} names no supported attachment store ({_EXPECTED})"
        )
    return factory(parsed)
