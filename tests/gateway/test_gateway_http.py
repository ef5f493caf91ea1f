"""The HTTP/SSE gateway over real HTTP: auth, validation, the session operations, SSE."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from lash_tasks.attachments import FilesystemBlobStore
from lash_tasks.errors import ValidationError
from lash_tasks.events.emitter import StepEvents
from lash_tasks.events.publisher import RedisEventPublisher, stream_key
from lash_tasks.ingress import CreateSessionPayload, EnqueueTurnPayload, parse_payload
from lash_tasks.runtime.lash_core import LeaseTimings
from lash_tasks.store.store import Store
from tests.events.private_redis import free_port
from tests.gateway.conftest import Gateway, clean_env, serve_command
from tests.runtime.conftest import Harness

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

ROUTES = [
    ("POST", "/sessions"),
    ("GET", "/sessions/s1"),
    ("POST", "/sessions/s1/inputs"),
    ("GET", "/sessions/s1/inputs/i1"),
    ("POST", "/sessions/s1/cancel"),
    ("GET", "/sessions/s1/events"),
]


def new_id() -> str:
    return f"gw-{uuid.uuid4().hex[:10]}"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def test_every_route_needs_the_bearer_token(gateway: Gateway) -> None:
    """Without a token, or with a wrong one, every route answers 401 (and says Bearer);
    /healthz and the OpenAPI document are open."""
    with (
        httpx.Client(base_url=gateway.url, timeout=30) as anonymous,
        gateway.client("wrong-" + gateway.token) as wrong,
    ):
        for method, path in ROUTES:
            for client in (anonymous, wrong):
                response = client.request(method, path, json={})
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                assert error_of(response)["code"] == "unauthorized"
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        document = anonymous.get("/openapi.json").json()
    assert {"/sessions", "/sessions/{session_id}/events"} <= set(document["paths"])
    body = document["paths"]["/sessions/{session_id}/inputs"]["post"]["requestBody"]
    assert "text" in body["content"]["application/json"]["schema"]["properties"]
    log = (gateway.home / "gateway.log").read_text()
    assert gateway.token not in log


def test_it_refuses_to_start_off_loopback_without_a_token(tmp_path: Path) -> None:
    """`serve --host 0.0.0.0` without LASH_HTTP_TOKEN exits 2 naming the variable, and
    never listens."""
    port = free_port()
    done = subprocess.run(
        serve_command("--host", "0.0.0.0", "--port", str(port)),
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=str(tmp_path),
    )
    assert done.returncode == 2
    assert "LASH_HTTP_TOKEN" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def counts(store: Store) -> tuple[int, int]:
    return store.maintenance.count_rows("lash_sessions"), store.maintenance.count_rows(
        "lash_pending_inputs"
    )


def expected_message(model: type[Any], data: Any) -> str:
    """The message the ingress tasks give for the same payload."""
    with pytest.raises(ValidationError) as caught:
        parse_payload(model, data)
    return caught.value.message


def test_bad_bodies_are_422_naming_the_field_and_write_nothing(
    gateway: Gateway, store: Store
) -> None:
    """Each bad body gets 422 with the ingress tasks' own message naming the field, and
    not one row is written."""
    sid = new_id()
    with gateway.client() as http:
        assert http.post("/sessions", json={"session_id": sid}).status_code == 201
        before = counts(store)
        bad_creates = [{"session_id": new_id(), "max_turns": 0}, {"session_id": "bad id!"}]
        for body in bad_creates:
            response = http.post("/sessions", json=body)
            assert response.status_code == 422
            assert error_of(response)["message"] == expected_message(CreateSessionPayload, body)
        bad_inputs = [{"text": ""}, {"text": "hi", "surprise": 1}, {"steer": "often"}]
        for body in bad_inputs:
            response = http.post(f"/sessions/{sid}/inputs", json=body)
            assert response.status_code == 422
            full = {"session_id": sid, **body}
            assert error_of(response)["message"] == expected_message(EnqueueTurnPayload, full)
        for content, named in [
            (b"{not json", "not JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b'{"text": "hi", "session_id": "other"}', "session_id: differs from the path"),
        ]:
            response = http.post(f"/sessions/{sid}/inputs", content=content)
            assert response.status_code == 422 and named in error_of(response)["message"]
        response = http.post(f"/sessions/{sid}/cancel", json={})
        assert response.status_code == 422 and "needs an input_id" in error_of(response)["message"]
        response = http.get(f"/sessions/{sid}/inputs/x", params={"wait": 1000})
        assert response.status_code == 422 and "wait" in error_of(response)["message"]
        assert counts(store) == before


def run_turn(store: Store, home: Path, session_id: str) -> dict[str, Any]:
    harness = Harness(store, FilesystemBlobStore(home / "blobs"), home)
    core, _ = harness.core(lease=LeaseTimings(30_000, 10_000))
    outcome = harness.run_until_settled(core, session_id).outcome
    assert outcome is not None
    return outcome


def test_sessions_inputs_cancel_view_and_long_poll_work_against_the_database(
    gateway: Gateway, store: Store
) -> None:
    """Create, idempotent enqueue, cancel, the view and a long poll that returns the answer
    once the turn commits, all through the same ingress operations as the Python client."""
    sid = new_id()
    with gateway.client() as http:
        assert http.post("/sessions", json={"session_id": sid}).json()["head_revision"] == 0
        # Create is idempotent too; the same id with another configuration is a conflict.
        assert http.post("/sessions", json={"session_id": sid}).status_code == 201
        other = http.post("/sessions", json={"session_id": sid, "model": "another-model"})
        assert other.status_code == 409 and error_of(other)["code"] == "session_exists"
        # Enqueue is idempotent by source_key; the same key with other text is a conflict.
        first = http.post(f"/sessions/{sid}/inputs", json={"text": "one", "source_key": "k1"})
        assert first.status_code == 202
        same = http.post(f"/sessions/{sid}/inputs", json={"text": "one", "source_key": "k1"})
        assert same.json()["input_id"] == first.json()["input_id"]
        clash = http.post(f"/sessions/{sid}/inputs", json={"text": "two", "source_key": "k1"})
        assert clash.status_code == 409
        input_id = first.json()["input_id"]
        assert http.get(f"/sessions/{sid}").json()["pending_inputs"] == [input_id]
        polled = http.get(f"/sessions/{sid}/inputs/{input_id}", params={"wait": 0.5}).json()
        assert polled["done"] is False and polled["state"] == "pending"
        # Cancel it: the long poll answers `cancelled`.
        cancelled = http.post(f"/sessions/{sid}/cancel", json={"source_key": "k1"}).json()
        assert cancelled == {"session_id": sid, "outcome": "cancelled", "interrupt_requested": None}
        answer = http.get(f"/sessions/{sid}/inputs/{input_id}", params={"wait": 5}).json()
        assert answer["done"] is True and answer["state"] == "cancelled"
        # A second input, answered while a long poll waits for it.
        second = http.post(f"/sessions/{sid}/inputs", json={"text": "hello"}).json()["input_id"]
        box: dict[str, Any] = {}

        def long_poll() -> None:
            with gateway.client() as poller:
                box["answer"] = poller.get(
                    f"/sessions/{sid}/inputs/{second}", params={"wait": 60}
                ).json()

        waiter = threading.Thread(target=long_poll)
        waiter.start()
        outcome = run_turn(store, gateway.home, sid)
        waiter.join(60)
        assert box["answer"]["done"] is True and box["answer"]["state"] == "completed"
        assert box["answer"]["outcome"]["text"] == outcome["text"]
        view = http.get(f"/sessions/{sid}").json()
        assert view["head_revision"] >= 1 and view["pending_inputs"] == []
        assert [n["text"] for n in view["transcript"]][-1] == outcome["text"]
        interrupted = http.post(f"/sessions/{sid}/cancel", json={"interrupt": True}).json()
        assert interrupted == {"session_id": sid, "outcome": None, "interrupt_requested": False}
        missing = http.get(f"/sessions/{new_id()}")
        assert missing.status_code == 404


def sse_messages(response: httpx.Response) -> list[dict[str, Any]]:
    """SSE messages (id, event, data) until the server ends the stream."""
    messages, current = [], {}
    for line in response.iter_lines():
        if not line:
            if "data" in current:
                messages.append(current)
            current = {}
        elif not line.startswith(":") and ":" in line:
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return messages


def publish(gateway: Gateway, sid: str, texts: list[str]) -> None:
    publisher = RedisEventPublisher(gateway.redis_url)
    step = StepEvents(publisher, False, sid, "turn-1", 0)
    for text in texts:
        step.text_delta(text)
    assert publisher.flush(5)
    publisher.close()


def read_sse(gateway: Gateway, sid: str, **options: Any) -> list[dict[str, Any]]:
    headers = options.pop("headers", {})
    with (
        gateway.client() as http,
        http.stream(
            "GET", f"/sessions/{sid}/events", params={"timeout": 1.5, **options}, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_messages(response)


def test_sse_delivers_published_events_and_resumes_with_last_event_id(gateway: Gateway) -> None:
    """Events arrive as SSE messages whose id is the cursor; a reconnect with Last-Event-ID
    (which wins over `cursor`) gets only what came after it."""
    sid = new_id()
    try:
        with gateway.client() as http:
            http.post("/sessions", json={"session_id": sid})
            bad = http.get(f"/sessions/{sid}/events", params={"cursor": "nope"})
            assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_cursor"
            assert http.get(f"/sessions/{new_id()}/events").status_code == 404
        publish(gateway, sid, ["a", "b", "c"])
        first = read_sse(gateway, sid)
        assert [json.loads(m["data"])["text"] for m in first] == ["a", "b", "c"]
        assert all(m["event"] == "text_delta" for m in first)
        assert [m["id"] for m in first] == [json.loads(m["data"])["cursor"] for m in first]
        publish(gateway, sid, ["d", "e"])
        resumed = read_sse(gateway, sid, cursor="0-0", headers={"Last-Event-ID": first[-1]["id"]})
        assert [json.loads(m["data"])["text"] for m in resumed] == ["d", "e"]
        by_query = read_sse(gateway, sid, cursor=first[0]["id"])
        assert [json.loads(m["data"])["text"] for m in by_query] == ["b", "c", "d", "e"]
    finally:
        redis.Redis.from_url(gateway.redis_url).delete(stream_key(sid))


def test_sse_streams_live_events_as_they_are_published(gateway: Gateway) -> None:
    """A connected SSE client receives an event published after it connected, promptly."""
    sid = new_id()
    try:
        with gateway.client() as http:
            http.post("/sessions", json={"session_id": sid})
        timer = threading.Timer(0.8, lambda: publish(gateway, sid, ["live"]))
        started = time.monotonic()
        timer.start()
        messages = read_sse(gateway, sid, timeout=3)
        timer.join()
        assert [json.loads(m["data"])["text"] for m in messages] == ["live"]
        assert time.monotonic() - started < 10
    finally:
        redis.Redis.from_url(gateway.redis_url).delete(stream_key(sid))
