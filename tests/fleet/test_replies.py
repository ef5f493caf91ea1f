"""Replies through real workers: a broker-only caller names `reply_to` and receives the turn's
outcome as a Celery message on its own queue; a reply whose worker never published it is
published by the sweeper."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import update

from lash_tasks.attachments import FilesystemBlobStore
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.providers import ScriptedProvider
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store import schema as t
from lash_tasks.store.records import InputDraft
from lash_tasks.store.store import Store
from tests.fleet.harness import Fleet, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

REPLY_QUEUE = "app.replies"
REPLY_TO = {"task": "app.turn_answered", "queue": REPLY_QUEUE}


def _received(fleet: Fleet) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(headers, reply body) of every message waiting on the reply queue, as a Celery
    consumer of the caller's own would get them (kombu keeps a Redis queue as a list)."""
    messages = []
    for raw in reversed(fleet.redis().lrange(REPLY_QUEUE, 0, -1)):
        envelope = json.loads(raw)
        assert envelope["properties"]["body_encoding"] == "base64"
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        assert kwargs == {} and len(args) == 1
        messages.append((envelope["headers"], args[0]))
    return messages


def test_a_broker_only_caller_gets_the_outcome_on_its_queue(fleet: Fleet) -> None:
    """enqueue_turn with reply_to through the ingress queue: when the turn ends, one message
    for the caller's task arrives on its queue, carrying the outcome and an idempotency key
    (also its task id); the outbox row is marked sent."""
    worker = fleet.start_worker("w1")
    worker.wait_ready()
    sender = fleet.publisher()
    sender.send_task(
        "lash.ingress.create_session", args=({"session_id": "r1"},), queue="lash.ingress"
    ).get(timeout=30)
    enqueued = sender.send_task(
        "lash.ingress.enqueue_turn",
        args=({"session_id": "r1", "text": "hello", "reply_to": REPLY_TO},),
        queue="lash.ingress",
    ).get(timeout=30)
    wait_until(lambda: fleet.queue_length(REPLY_QUEUE) > 0, 30, "the reply")
    [(headers, body)] = _received(fleet)
    assert headers["task"] == "app.turn_answered"
    assert headers["id"] == body["idempotency_key"]
    assert body["idempotency_key"] == f"r1:{body['turn_id']}:{enqueued['input_id']}"
    assert (body["session_id"], body["input_id"]) == ("r1", enqueued["input_id"])
    assert body["outcome"]["status"] == "finished"
    assert body["outcome"]["text"] == "echo: hello"
    store = Store.from_url(fleet.database_url)
    try:
        wait_until(lambda: store.replies.list("r1")[0].sent_at is not None, 10, "sent mark")
        assert store.replies.unsent() == []
    finally:
        store.close()


def test_the_sweeper_publishes_a_reply_its_worker_never_sent(fleet: Fleet) -> None:
    """A turn committed by a process that published nothing (it died after its commit):
    the sweep job of a real worker sends the reply, once its grace has passed."""
    store = Store.from_url(fleet.database_url)
    blobs = FilesystemBlobStore(fleet.home / "attachments")
    core = (
        LashCore.builder()
        .with_sql_host(store, blobs)
        .llm_provider(ScriptedProvider())
        .model(ModelSpec(id="scripted"))
        .build()
    )
    try:
        store.sessions.create("r2", SessionPolicy(model=ModelSpec(id="scripted")))
        row = store.inputs.enqueue(InputDraft("r2", "k1", {"text": "hi", "reply_to": REPLY_TO}))
        assert run_step(core, "r2").status == "finished"
        [stored] = store.replies.list("r2")
        assert stored.sent_at is None
        r = t.reply_outbox
        with store.database.engine.begin() as conn:  # past the worker's grace, without waiting
            conn.execute(update(r).values(created_at=r.c.created_at - 60_000))
        worker = fleet.start_worker("w1")
        worker.wait_ready()
        report = (
            fleet.publisher()
            .send_task("lash.maintenance.sweep", queue="lash.maintenance")
            .get(timeout=30)
        )
        assert report["republished_replies"] == 1
        wait_until(lambda: fleet.queue_length(REPLY_QUEUE) > 0, 10, "the reply")
        [(headers, body)] = _received(fleet)
        assert body == stored.reply.body
        assert headers["id"] == f"r2:{body['turn_id']}:{row.input_id}"
        assert store.replies.unsent() == []
    finally:
        core.close()
