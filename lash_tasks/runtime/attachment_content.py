"""Fetch what a request's user messages attach, just before the LLM call is made.

The graph and the effect journal hold attachment ids only; the bytes are read through the
session's attachment facade (so a session reads only what it holds) when the call really
runs — never for a replayed one — and travel in `LlmRequest.attachments` to the wire format.
"""

from __future__ import annotations

import dataclasses
import logging

from lash_tasks.attachments import SessionAttachmentStore
from lash_tasks.errors import NotFound, ValidationError
from lash_tasks.machine import AttachmentContent, LlmRequest
from lash_tasks.providers.attachment_parts import MAX_FETCH_BYTES

log = logging.getLogger(__name__)


def with_attachment_content(
    attachments: SessionAttachmentStore | None, request: LlmRequest
) -> LlmRequest:
    wanted = dict.fromkeys(
        attachment_id
        for message in request.messages
        if message.role == "user"
        for attachment_id in message.attachments
    )
    if attachments is None or not wanted:
        return request
    contents: list[AttachmentContent] = []
    for attachment_id in wanted:
        try:
            contents.append(attachments.read(attachment_id, max_bytes=MAX_FETCH_BYTES))
        except (NotFound, ValidationError) as exc:
            # The model is told it could not be read; failing would fail every later call too,
            # since the message stays in the history. Transient store errors still raise.
            log.warning(
                "attachment %s of session %s: %s", attachment_id, attachments.session_id, exc.code
            )
    return dataclasses.replace(request, attachments=tuple(contents))
