"""Server-Sent Events framing of a session's event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

from starlette.concurrency import iterate_in_threadpool

from lash_tasks.errors import LashError
from lash_tasks.events.vocabulary import SessionEvent, event_json

# Idle ticks (one a second) between keep-alive comments: proxies drop silent connections.
KEEP_ALIVE_TICKS = 15


def frame(event: SessionEvent) -> str:
    """One SSE message: the cursor as its id (so `Last-Event-ID` resumes after it)."""
    return f"id: {event.cursor}\nevent: {event.type}\ndata: {event_json(event)}\n\n"


async def sse_stream(ticks: Iterator[SessionEvent | None]) -> AsyncIterator[str]:
    # The reader blocks in a worker thread at most about a second at a time, so a stream
    # whose client went away lets go of its thread soon after.
    yield "retry: 1000\n\n"
    idle = 0
    try:
        async for item in iterate_in_threadpool(ticks):
            if item is None:
                idle += 1
                if idle >= KEEP_ALIVE_TICKS:
                    idle = 0
                    yield ": keep-alive\n\n"
                continue
            idle = 0
            yield frame(item)
    except LashError as exc:
        # Headers are gone already: say why the stream ends, in the stream.
        yield f"event: error\ndata: {json.dumps({'error': exc.to_dict()})}\n\n"
