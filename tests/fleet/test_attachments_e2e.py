"""An image put through the client, named by id in `lash.ingress.enqueue_turn`, reaches the
model from a real worker (OpenAI wire format, loopback LLM server)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lash_tasks.machine.ids import attachment_id_for
from tests.fleet.harness import Fleet
from tests.runtime._llm_server import ScriptedHttpLlm, chat_reply

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(180)]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_an_image_named_at_ingress_reaches_the_model(fleet: Fleet) -> None:
    """Ingress carries the id only; the worker records it, sends the image inline, and the
    turn's commit keeps it; an id the session does not hold is refused, nothing written."""
    server = ScriptedHttpLlm((200, chat_reply("a red pixel")))
    app = fleet.publisher()
    client = fleet.client()
    try:
        worker = fleet.start_worker(
            "w0",
            concurrency=2,
            LASH_PROVIDER="openai",
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="loopback-test-key",
        )
        worker.wait_ready()
        client.create_session("pic", provider="openai", model="vision")
        attachment_id = client.put_attachment("pic", PNG, "image/png")

        # An id this session never put is refused by the worker; nothing is written
        stranger = attachment_id_for(b"someone else's")
        refused: Any = app.send_task(
            "lash.ingress.enqueue_turn",
            args=({"session_id": "pic", "text": "and this?", "attachments": [stranger]},),
        ).get(timeout=30, propagate=False)
        # (Checked by the id it names, whichever form a rejection takes in the result.)
        assert stranger in str(refused)
        assert client.store.inputs.list_all("pic") == []

        # The image named by id is answered by a real worker
        ok = app.send_task(
            "lash.ingress.enqueue_turn",
            args=({"session_id": "pic", "text": "What is it?", "attachments": [attachment_id]},),
        ).get(timeout=30)
        answer = client.wait_for_input("pic", ok["input_id"], timeout=60)
        assert (answer.state, answer.text) == ("completed", "a red pixel")

        [request] = server.requests
        [user] = [m for m in request["messages"] if m["role"] == "user"]
        assert user["content"] == [
            {"type": "text", "text": "What is it?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
            },
        ]
        [row] = client.store.manifest.rows("pic")
        assert (row.attachment_id, row.media_type) == (attachment_id, "image/png")
        assert row.committed_at is not None
    finally:
        server.stop()
        app.close()
        client.close()
