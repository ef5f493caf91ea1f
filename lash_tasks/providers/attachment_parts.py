"""What the model is shown of the attachments a user message names, for every wire format.

Images the APIs take inline (PNG, JPEG, GIF, WebP) become image parts; small text becomes a
text part; anything else — another media type, content too large, bytes that do not match
their declared image type, an attachment that could not be read — becomes a one-line note
naming the attachment and its media type, so the model knows it exists and why it cannot see
it. A note instead of a refused request matters: history is re-sent on every call, so one
attachment an API rejects would otherwise stop every later turn of the session.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from lash_tasks.machine.messages import AttachmentContent, Message

# Anthropic refuses an image over 5 MB of base64, which is 3.75 MB of bytes.
MAX_IMAGE_BYTES = 3_750_000
MAX_TEXT_BYTES = 32 * 1024
# Nothing larger is worth fetching: it could only become a note.
MAX_FETCH_BYTES = max(MAX_IMAGE_BYTES, MAX_TEXT_BYTES)

IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_IMAGE_SIGNATURES: tuple[tuple[str, bytes], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF87a"),
    ("image/gif", b"GIF89a"),
)
_TEXT_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/x-ndjson",
        "application/javascript",
        "application/sql",
    }
)


@dataclass(frozen=True)
class ImagePart:
    media_type: str
    data: bytes

    @property
    def base64_data(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{self.base64_data}"


@dataclass(frozen=True)
class TextPart:
    text: str


AttachmentPart = ImagePart | TextPart


def attachment_index(contents: tuple[AttachmentContent, ...]) -> dict[str, AttachmentContent]:
    return {content.attachment_id: content for content in contents}


def attachment_parts(
    message: Message, contents: Mapping[str, AttachmentContent]
) -> list[AttachmentPart]:
    """The parts for the attachments of `message` (user messages only), in their order."""
    if message.role != "user":
        return []
    return [
        _part(attachment_id, contents.get(attachment_id)) for attachment_id in message.attachments
    ]


def _part(attachment_id: str, content: AttachmentContent | None) -> AttachmentPart:
    if content is None:
        return _note(attachment_id, None, None, "could not be read")
    declared = _essence(content.media_type)
    if not content.complete:
        return _note(attachment_id, declared, content.size, "is too large to show")
    sniffed = sniff_image_type(content.data)
    # Octet-stream is what a put names when its caller did not know the type.
    unknown = declared in (None, "application/octet-stream")
    if sniffed is not None and (unknown or (declared or "").startswith("image/")):
        if content.size > MAX_IMAGE_BYTES:
            return _note(attachment_id, declared, content.size, "is too large to show")
        # The bytes decide the type: APIs refuse an image whose declared type is wrong.
        return ImagePart(sniffed, content.data)
    if declared in IMAGE_MEDIA_TYPES:
        return _note(attachment_id, declared, content.size, "is not a readable image")
    if declared is None or _is_text_type(declared):
        text = _as_text(content.data)
        if text is not None and content.size > MAX_TEXT_BYTES:
            return _note(
                attachment_id, declared or "text/plain", content.size, "is too large to show"
            )
        if text is not None:
            label = declared or "text/plain"
            return TextPart(f"[attachment {attachment_id} ({label})]\n{text}\n[end of attachment]")
    return _note(attachment_id, declared, content.size, "cannot be shown to the model")


def sniff_image_type(data: bytes) -> str | None:
    """The media type of an image format the LLM APIs accept, judged by its first bytes."""
    for media_type, signature in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _essence(media_type: str | None) -> str | None:
    # "Text/Plain; charset=utf-8" and "text/plain" are the same type.
    if not media_type:
        return None
    essence = media_type.split(";", 1)[0].strip().lower()
    return "image/jpeg" if essence == "image/jpg" else essence or None


def _is_text_type(media_type: str) -> bool:
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def _as_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _note(attachment_id: str, media_type: str | None, size: int | None, why: str) -> TextPart:
    if size is None:
        return TextPart(f"[attachment {attachment_id} {why}]")
    return TextPart(
        f"[attachment {attachment_id} ({media_type or 'unknown type'}, {size} bytes) {why}]"
    )
