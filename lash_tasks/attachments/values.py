"""The small values of the attachment layer: durability tiers, owner kinds, URIs, media types
and bytes, each checked before use. (The attachment id itself lives in `machine/ids.py`.)"""

from __future__ import annotations

from typing import Literal

from lash_tasks.errors import ValidationError
from lash_tasks.machine.ids import check_attachment_id

DurabilityTier = Literal["durable", "inline"]
OwnerKind = Literal["turn", "process", "input"]

URI_PREFIX = "lash-attachment://sha256/"
DEFAULT_MEDIA_TYPE = "application/octet-stream"


def attachment_uri(attachment_id: str) -> str:
    return URI_PREFIX + check_attachment_id(attachment_id)


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
