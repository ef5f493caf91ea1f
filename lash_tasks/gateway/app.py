"""The gateway's routes: thin views over the same ingress operations the Python client uses.

Request bodies are the ingress payload models (lash_tasks.ingress), validated by
`parse_payload`, so a bad body fails with the message an ingress task would give, as 422,
before anything is written. Database work runs in the thread pool; the event stream is
read there too, one blocking read of at most a second at a time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from lash_tasks.client import Client
from lash_tasks.errors import ValidationError, WaitTimeout
from lash_tasks.events.waiting import input_answer
from lash_tasks.gateway.auth import BearerAuth
from lash_tasks.gateway.error_responses import install_error_handlers
from lash_tasks.gateway.sse import sse_stream
from lash_tasks.ingress import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    operations,
    parse_payload,
    reads,
)
from lash_tasks.metrics.backlog_collector import BacklogCollector
from lash_tasks.store.backlog import Backlog
from lash_tasks.views import TurnAnswer

P = TypeVar("P", bound=BaseModel)
# A long poll holds a thread; past a minute a client should simply ask again.
MAX_WAIT_S = 60.0


def create_app(client: Client, token: str | None, threads: int = 128) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Long polls and event streams each hold a pool thread while they wait.
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield
        client.close()

    app = FastAPI(
        title="lash-tasks gateway",
        version=version("lash-tasks"),
        description="Sessions, inputs and live session events of a lash-tasks fleet.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    router = APIRouter(dependencies=[Depends(BearerAuth(token))])
    # The fleet's backlog, read from the database at each scrape; each worker serves its
    # own counters (LASH_METRICS_PORT). docs/operations.md, Metrics.
    backlog = CollectorRegistry(auto_describe=True)
    backlog.register(BacklogCollector(Backlog(client.store.database)))

    @router.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format: pending inputs, the oldest one's age, active turns..."""
        body = await run_in_threadpool(generate_latest, backlog)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/sessions", status_code=201, openapi_extra=_body_doc(CreateSessionPayload))
    async def create_session(request: Request) -> dict[str, Any]:
        payload = await _payload(request, CreateSessionPayload)
        record = await run_in_threadpool(
            operations.create_session, client.store, payload, client.settings
        )
        return {"session_id": record.session_id, "head_revision": record.head_revision}

    @router.get("/sessions/{session_id}")
    async def session_view(session_id: str) -> dict[str, Any]:
        view = await run_in_threadpool(reads.session_view, client.store, session_id)
        return view.model_dump(mode="json")

    @router.post(
        "/sessions/{session_id}/inputs",
        status_code=202,
        openapi_extra=_body_doc(EnqueueTurnPayload, path="session_id"),
    )
    async def enqueue_turn(session_id: str, request: Request) -> dict[str, Any]:
        """Submit user input; idempotent by `source_key` (same key and text: same input)."""
        payload = await _payload(request, EnqueueTurnPayload, session_id=session_id)
        row = await run_in_threadpool(
            operations.enqueue_and_poke, client.store, payload, client.poke
        )
        return {"session_id": session_id, "input_id": row.input_id, "state": row.state}

    @router.get("/sessions/{session_id}/inputs/{input_id}")
    async def input_state(
        session_id: str, input_id: str, wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_S)
    ) -> dict[str, Any]:
        """The input's state; with `wait`, a long poll until its turn ended (`done`)."""

        def look() -> TurnAnswer:
            if wait <= 0:
                return input_answer(client.store, session_id, input_id)
            try:
                return client.wait_for_input(session_id, input_id, timeout=wait)
            except WaitTimeout:
                return input_answer(client.store, session_id, input_id)

        answer = await run_in_threadpool(look)
        return {"session_id": session_id, **answer.to_dict()}

    @router.post(
        "/sessions/{session_id}/cancel",
        openapi_extra=_body_doc(CancelInputPayload, path="session_id"),
    )
    async def cancel(session_id: str, request: Request) -> dict[str, Any]:
        """Cancel a pending input (`input_id` or `source_key`) and/or interrupt the turn."""
        payload = await _payload(request, CancelInputPayload, session_id=session_id)
        result = await run_in_threadpool(
            operations.cancel_input, client.store, payload, client.publisher
        )
        return result.model_dump(mode="json")

    @router.get("/sessions/{session_id}/events", response_class=StreamingResponse)
    async def events(
        session_id: str,
        cursor: str | None = Query(None, description="resume after this event cursor"),
        timeout: float | None = Query(None, gt=0, le=24 * 3600),
        last_event_id: str | None = Header(None),
    ) -> StreamingResponse:
        """Server-Sent Events: each message's id is its cursor. `Last-Event-ID` (sent by
        reconnecting clients) wins over `cursor`."""

        def open_stream() -> Any:
            client.store.sessions.record(session_id)  # 404 before any stream starts
            start = last_event_id or cursor
            return client.event_source.follow(session_id, start, timeout=timeout)

        ticks = await run_in_threadpool(open_stream)
        return StreamingResponse(
            sse_stream(ticks),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.include_router(router)
    return app


async def _payload(request: Request, model: type[P], **path: str) -> P:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ValidationError(f"invalid {model.__name__}: the request body is not JSON") from None
    if isinstance(data, dict):
        for field, value in path.items():
            if data.setdefault(field, value) != value:
                raise ValidationError(
                    f"invalid {model.__name__}: {field}: differs from the path ({value!r})"
                )
    return parse_payload(model, data)


def _body_doc(model: type[BaseModel], path: str | None = None) -> dict[str, Any]:
    """The request body's schema for the OpenAPI document (fields named in the path left out)."""
    schema = model.model_json_schema()
    if path is not None:
        schema["properties"].pop(path, None)
        schema["required"] = [f for f in schema.get("required", []) if f != path]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
