"""Reading a session's Redis Stream: in order, resumable, and never silently short.

Each read is one MULTI of XINFO STREAM and a non-blocking XREAD, so the stream's bounds
and the entries come from the same instant: if the first kept entry is newer than the
cursor, entries after the cursor were trimmed (or the stream expired or was lost with a
Redis restart) and the reader yields a `gap` with the session view before going on from
the oldest kept entry. A blocking XREAD only waits for news; its result is read again
atomically, which costs one loopback round trip and makes the gap check exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.engine import make_url

from lash_tasks.errors import EventsUnavailable, InvalidCursor
from lash_tasks.events.cursors import STREAM_START, StreamId, parse_stream_cursor
from lash_tasks.events.publisher import STREAM_FIELD, stream_key
from lash_tasks.events.sources import Deadline, ViewProvider, now_ms
from lash_tasks.events.vocabulary import Gap, GapReason, SessionEvent, event_from_record
from lash_tasks.machine.ids import check_session_id

T = TypeVar("T")
Entries = list[tuple[StreamId, dict[bytes, bytes]]]
# A cursor this far ahead of the Redis clock cannot have come from this stream.
_CLOCK_SLACK_MS = 1000


class StreamState:
    """What XINFO STREAM said about a stream at one instant (None fields: no stream)."""

    def __init__(self, info: dict[str, Any] | None) -> None:
        self.exists = info is not None
        info = info or {}
        first = info.get("first-entry")
        self.first = StreamId.parse(first[0]) if first else None
        last = info.get("last-generated-id")
        self.last_generated = StreamId.parse(last) if last else STREAM_START

    def gap_after(self, position: StreamId) -> tuple[GapReason, StreamId] | None:
        """(reason, where to go on) if entries after `position` are gone, else None."""
        if position == STREAM_START:
            return None
        if not self.exists:
            return "lost", STREAM_START
        if self.first is None:  # emptied by trimming: everything up to the last id is gone
            return ("trimmed", self.last_generated) if position < self.last_generated else None
        # Ids strictly between the cursor and the first kept entry may have existed: a gap.
        # (Right before it, nothing can be missing; that is also where a gap resumes.)
        if position < self.first.predecessor():
            return "trimmed", self.first.predecessor()
        return None


class RedisEventSource:
    def __init__(
        self,
        url: str,
        view: ViewProvider,
        *,
        block_s: float = 1.0,
        batch: int = 256,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self._view = view
        self._block_s = block_s
        self._batch = batch
        self._where = make_url(url).render_as_string(hide_password=True)
        # The socket timeout must outlast a blocking XREAD, or every idle wait would fail.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=block_s + 5.0,
            socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def close(self) -> None:
        self._redis.close()

    def tail(self, session_id: str) -> str:
        check_session_id(session_id)
        state, _, _ = self._snapshot(stream_key(session_id), STREAM_START, count=1)
        return str(state.last_generated)

    def follow(
        self,
        session_id: str,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        idle_s: float = 1.0,
    ) -> Iterator[SessionEvent | None]:
        check_session_id(session_id)
        position = parse_stream_cursor(cursor) or STREAM_START
        key = stream_key(session_id)
        first = self._snapshot(key, position, self._batch)
        state, _, server_ms = first
        if position > state.last_generated and (
            state.exists or position.ms > server_ms + _CLOCK_SLACK_MS
        ):
            raise InvalidCursor(
                f"cursor {cursor!r} is ahead of the event stream of session {session_id!r} "
                f"(last event {state.last_generated}): it did not come from this stream",
                cursor=cursor,
            )
        return self._follow(session_id, key, position, first, Deadline(timeout), idle_s)

    def _follow(
        self,
        session_id: str,
        key: str,
        position: StreamId,
        snapshot: tuple[StreamState, Entries, int],
        deadline: Deadline,
        idle_s: float,
    ) -> Iterator[SessionEvent | None]:
        idle_since = time.monotonic()
        state, entries, _ = snapshot
        while True:
            gap = state.gap_after(position)
            if gap is not None:
                reason, position = gap
                yield Gap(
                    session_id=session_id,
                    reason=reason,
                    view=self._view(session_id),
                    at_ms=now_ms(),
                    cursor=str(position),
                )
            else:
                for entry_id, fields in entries:
                    position = entry_id
                    yield self._decode(session_id, entry_id, fields)
                if entries:
                    idle_since = time.monotonic()
                if len(entries) < self._batch:  # caught up: wait for news
                    wait = deadline.left(min(self._block_s, idle_s))
                    if wait <= 0:
                        return
                    self._wait_for_news(key, position, wait)
                    if time.monotonic() - idle_since >= idle_s:
                        idle_since = time.monotonic()
                        yield None
            state, entries, _ = self._snapshot(key, position, self._batch)

    def _wait_for_news(self, key: str, position: StreamId, wait_s: float) -> None:
        block_ms = max(1, int(wait_s * 1000))
        self._call(lambda: self._redis.xread({key: str(position)}, count=1, block=block_ms))

    def _snapshot(
        self, key: str, position: StreamId, count: int
    ) -> tuple[StreamState, Entries, int]:
        def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xread({key: str(position)}, count=count)
            pipe.time()
            return list(pipe.execute(raise_on_error=False))

        info, read, (seconds, micros) = self._call(run)
        if isinstance(info, Exception):
            if "no such key" not in str(info).lower():
                raise EventsUnavailable(f"the event stream {key!r} is unreadable: {info}")
            info = None
        if isinstance(read, Exception):
            raise EventsUnavailable(f"the event stream {key!r} is unreadable: {read}")
        entries: Entries = []
        for _, items in _streams(read):
            entries.extend((StreamId.parse(i), fields) for i, fields in items)
        return StreamState(info), entries, int(seconds) * 1000 + int(micros) // 1000

    def _decode(
        self, session_id: str, entry_id: StreamId, fields: dict[bytes, bytes]
    ) -> SessionEvent:
        raw = fields.get(STREAM_FIELD.encode())
        record = json.loads(raw) if raw is not None else None
        event = event_from_record(record, str(entry_id))
        if isinstance(event, Gap) and event.view is None:
            # A publisher's marker for events it could not send: the view is read now.
            return event.model_copy(update={"view": self._view(session_id)})
        return event

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            raise EventsUnavailable(
                f"the event stream at {self._where} is unreachable "
                f"({type(exc).__name__}: {exc}); events cannot be read until it is back",
                redis=self._where,
            ) from exc


def _streams(read: Any) -> list[tuple[Any, Any]]:
    """XREAD's reply as (key, entries) pairs under RESP2 (a list) and RESP3 (a dict)."""
    if not read:
        return []
    if isinstance(read, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in read.items()]
    return [(k, v) for k, v in read]
