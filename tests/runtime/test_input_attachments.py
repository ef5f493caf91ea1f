"""Attachments named by user input reach the model: fetched through the session facade at
request-building time and sent the way the LLM provider's wire format takes them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from lash_tasks.attachments import SessionAttachments, reclaim_unreferenced_attachments
from lash_tasks.ingress import EnqueueTurnPayload, operations
from lash_tasks.providers.http_send import RetryPolicy
from lash_tasks.providers.openai_chat import OpenAIChatProvider
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import InputState
from tests.runtime._llm_server import ScriptedHttpLlm, chat_reply
from tests.runtime.conftest import Harness

# A complete 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
CALL_TOOL = chat_reply(
    tool_calls=[
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "calculator", "arguments": '{"expression": "1+1"}'},
        }
    ]
)


@pytest.fixture
def llm_server() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for item in reversed(opened):
        item.close() if isinstance(item, OpenAIChatProvider) else item.stop()


def openai(opened: list[Any], *replies: bytes) -> tuple[ScriptedHttpLlm, OpenAIChatProvider]:
    server = ScriptedHttpLlm(*((200, reply) for reply in replies))
    provider = OpenAIChatProvider(server.base_url, retry=RetryPolicy(max_attempts=1))
    opened.extend([server, provider])
    return server, provider


def ask_about(harness: Harness, session_id: str, attachment_id: str) -> str:
    payload = EnqueueTurnPayload(
        session_id=session_id, text="What is in this picture?", attachments=(attachment_id,)
    )
    return operations.enqueue_turn(harness.store, payload).input_id


def user_content(request: dict[str, Any]) -> Any:
    [user] = [m for m in request["messages"] if m["role"] == "user"]
    return user["content"]


def test_the_model_request_carries_the_users_image(harness: Harness, llm_server: list[Any]) -> None:
    """Every LLM call of the turn sends the image inline; the first commit stamps its row."""
    # Given an image put for s1 (as Client.put_attachment does) and named by an input
    server, provider = openai(llm_server, CALL_TOOL, chat_reply("a red pixel"))
    core, _ = harness.core(provider=provider)
    sid = harness.session()
    attachment_id = SessionAttachments(harness.store.manifest, harness.blobs, sid).put(
        PNG, "image/png"
    )
    input_id = ask_about(harness, sid, attachment_id)

    # When the turn's first step runs (the model asks for a tool)
    assert run_step(core, sid).status == "progressed"

    # Then the request carried the text and the image as a data: URI
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert user_content(server.requests[0]) == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": data_uri}},
    ]
    # and the commit that wrote the user message stamped the attachment's row
    [row] = harness.store.manifest.rows(sid)
    assert row.committed_at is not None

    # When the turn finishes, Then the second call re-sent the image with the history
    assert run_step(core, sid).outcome["text"] == "a red pixel"  # type: ignore[index]
    assert user_content(server.requests[1]) == user_content(server.requests[0])
    assert harness.store.inputs.get(sid, input_id).state == InputState.COMPLETED  # type: ignore[union-attr]
    assert harness.messages(sid)[0].attachments == (attachment_id,)

    # and GC, however late, keeps the bytes the transcript refers to
    future = harness.store.manifest.now_ms() + 3_600_000
    reclaim_unreferenced_attachments(harness.store.manifest, harness.blobs, 1, now_ms=future)
    assert harness.blobs.get(attachment_id) == PNG


def test_an_attachment_whose_bytes_are_gone_becomes_a_note(
    harness: Harness, llm_server: list[Any]
) -> None:
    """Bytes missing from the blob store: the model is told, and the turn still finishes."""
    server, provider = openai(llm_server, chat_reply("I cannot see it"))
    core, _ = harness.core(provider=provider)
    sid = harness.session()
    attachment_id = SessionAttachments(harness.store.manifest, harness.blobs, sid).put(
        PNG, "image/png"
    )
    ask_about(harness, sid, attachment_id)
    harness.blobs.delete(attachment_id)

    harness.run_until_settled(core, sid)

    assert user_content(server.requests[0]) == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "text", "text": f"[attachment {attachment_id} could not be read]"},
    ]
