"""Attachment ids: the sha256 of the bytes, checked before any id reaches a path or a query."""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from lash_tasks.errors import ValidationError

DurabilityTier = Literal["durable", "inline"]
OwnerKind = Literal["turn", "process", "input"]

URI_PREFIX = "lash-attachment://sha256/"
DEFAULT_MEDIA_TYPE = "application/octet-stream"

_ATTACHMENT_ID = re.compile(r"[0-9a-f]{64}")


def attachment_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attachment_uri(attachment_id: str) -> str:
    return URI_PREFIX + check_attachment_id(attachment_id)


def check_attachment_id(attachment_id: object) -> str:
    """Return `attachment_id` if it is 64 lowercase hex characters, else raise `ValidationError`.

    Ids become file names and object keys, so anything else (`../`, separators, upper case
    aliases of the same hash) is refused here rather than escaped later.
    """
    if not isinstance(attachment_id, str) or _ATTACHMENT_ID.fullmatch(attachment_id) is None:
        shown = attachment_id if isinstance(attachment_id, str) else type(attachment_id).__name__
        raise ValidationError(
            f"attachment id must be 64 lowercase hex characters (a sha256), got {shown!r:.80}",
        )
    return attachment_id


def check_media_type(media_type: object) -> str:
    if not isinstance(media_type, str) or not media_type or len(media_type) > 255:
        raise ValidationError("attachment media type must be a non-empty string of ≤255 characters")
    return media_type


def as_bytes(data: object) -> bytes:
    """Accept any bytes-like value; refuse str so text is never silently re-encoded."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise ValidationError(f"attachment data must be bytes, got {type(data).__name__}")
