"""User attachments on the wire: recorded request bodies per format, and the rendering rules."""

from __future__ import annotations

import base64
import json

import pytest

from lash_tasks.machine.ids import attachment_id_for
from lash_tasks.machine.messages import AttachmentContent, LlmRequest, Message, ToolCall
from lash_tasks.providers.anthropic_wire import build_messages_request
from lash_tasks.providers.attachment_parts import (
    MAX_TEXT_BYTES,
    ImagePart,
    TextPart,
    attachment_parts,
    sniff_image_type,
)
from lash_tasks.providers.openai_wire import build_chat_request

from ._server import fixture_bytes

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
TEXT = b"line one\nline two\n"
PDF = b"%PDF-1.7 not really"
FAKE_PNG = b"not a png at all"


def content(data: bytes, media_type: str | None) -> AttachmentContent:
    return AttachmentContent(attachment_id_for(data), media_type, len(data), data)


HUGE = AttachmentContent(attachment_id_for(b"huge"), "image/jpeg", 10_000_000)
MISSING_ID = attachment_id_for(b"missing")
CONTENTS = (
    content(PNG, "image/png"),
    content(TEXT, "text/plain; charset=utf-8"),
    content(PDF, "application/pdf"),
    content(FAKE_PNG, "image/png"),
    HUGE,
)


def _request() -> LlmRequest:
    ids = (*(c.attachment_id for c in CONTENTS), MISSING_ID)
    return LlmRequest(
        model="vision-model",
        system="Describe attachments.",
        messages=(
            Message(role="user", text="What are these?", attachments=ids),
            Message(
                role="assistant",
                text="A pixel and some text; saving a note.",
                tool_calls=(ToolCall("c1", "write_file", '{"filename": "note.txt"}'),),
            ),
            # Only user messages send attachments: a tool result's stay references.
            Message(
                role="tool",
                text="stored",
                tool_call_id="c1",
                name="write_file",
                attachments=(ids[1],),
            ),
        ),
        max_output_tokens=64,
        attachments=CONTENTS,
    )


def test_openai_request_with_attachments_matches_the_recording() -> None:
    """Images as image_url data: URIs, text inline, the rest as notes, in the user message."""
    body = build_chat_request(_request())
    assert body == json.loads(fixture_bytes("openai_chat_request_attachments.json"))


def test_anthropic_request_with_attachments_matches_the_recording() -> None:
    """Images as base64 image blocks before the text, text inline, the rest as notes."""
    body = build_messages_request(_request())
    assert body == json.loads(fixture_bytes("anthropic_messages_request_attachments.json"))


def test_messages_without_attachments_keep_their_plain_shape() -> None:
    """No attachments: OpenAI content stays a string, Anthropic a single text block."""
    request = LlmRequest(model="m", messages=(Message(role="user", text="hi"),))
    assert build_chat_request(request)["messages"] == [{"role": "user", "content": "hi"}]
    assert build_messages_request(request)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_the_envelope_json_carries_ids_not_bytes() -> None:
    """LlmRequest.to_json (the effect journal envelope) holds attachment ids, never content."""
    request = _request()
    encoded = json.dumps(request.to_json())
    assert base64.b64encode(PNG).decode() not in encoded
    assert "attachments" not in request.to_json()
    assert (
        request.to_json()
        == LlmRequest(
            request.model,
            request.messages,
            request.system,
            max_output_tokens=request.max_output_tokens,
        ).to_json()
    )


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        (PNG, "application/octet-stream", "image/png"),
        (PNG, None, "image/png"),
        (PNG, "image/jpeg", "image/png"),
        (b"\xff\xd8\xff\xe0jpeg", "image/jpg", "image/jpeg"),
        (b"GIF89a...", "image/gif", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", None, "image/webp"),
    ],
)
def test_images_are_typed_by_their_bytes(data: bytes, declared: str | None, expected: str) -> None:
    """An image is sent with the type its bytes show (APIs refuse a wrong declared type)."""
    c = content(data, declared)
    [part] = attachment_parts(Message("user", attachments=(c.attachment_id,)), {c.attachment_id: c})
    assert part == ImagePart(expected, data)
    assert sniff_image_type(data) == expected


@pytest.mark.parametrize(
    ("data", "declared", "shown"),
    [
        (b'{"a": 1}', "application/json", True),
        (b"<svg/>", "image/svg+xml", True),
        (b"plain words", None, True),
        (b"x" * (MAX_TEXT_BYTES + 1), "text/plain", False),
        (b"\xff\xfe binary", "text/plain", False),
        (b"plain words", "application/octet-stream", False),
        (b"PK\x03\x04zip", "application/zip", False),
    ],
)
def test_small_text_is_shown_and_the_rest_is_a_note(
    data: bytes, declared: str | None, shown: bool
) -> None:
    """Text of a text type (or of unknown type) up to the limit is inline; else a note that
    names the attachment and its media type."""
    c = content(data, declared)
    [part] = attachment_parts(Message("user", attachments=(c.attachment_id,)), {c.attachment_id: c})
    assert isinstance(part, TextPart)
    assert c.attachment_id in part.text
    assert (data.decode("utf-8", "replace") in part.text) == shown
    if not shown:
        assert (declared or "unknown type") in part.text
