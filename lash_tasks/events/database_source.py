"""Reading the database event log: committed events only, for deployments without Redis.

The log is written by the step's commit (`CommitDraft.events`), numbered 1, 2, 3 … per
session under the session lock, so numbers have no holes except the oldest ones vacuum
removed. A reader whose cursor is followed by a higher number than the next one therefore
knows exactly that it missed events: it gets a `gap` with the session view. Vacuum always
keeps a session's last events, so a cursor past the last one is from the future. Readers
poll with a short interval; this is the embedded default, not a fleet-sized path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from lash_tasks.errors import InvalidCursor
from lash_tasks.events.cursors import db_cursor, parse_db_cursor
from lash_tasks.events.sources import Deadline, ViewProvider, now_ms
from lash_tasks.events.vocabulary import Gap, SessionEvent, event_from_record
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store.session_events import SessionEvents


class DatabaseEventSource:
    def __init__(
        self, log: SessionEvents, view: ViewProvider, *, poll_s: float = 0.1, batch: int = 256
    ) -> None:
        self._log = log
        self._view = view
        self._poll_s = poll_s
        self._batch = batch

    def close(self) -> None:
        return None  # the log's store belongs to the caller

    def tail(self, session_id: str) -> str:
        check_session_id(session_id)
        return db_cursor(self._log.last_seq(session_id))

    def follow(
        self,
        session_id: str,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        idle_s: float = 1.0,
    ) -> Iterator[SessionEvent | None]:
        check_session_id(session_id)
        position = parse_db_cursor(cursor) or 0
        last = self._log.last_seq(session_id)
        if position > last:
            raise InvalidCursor(
                f"cursor {cursor!r} is ahead of the event log of session {session_id!r} "
                f"(last event {db_cursor(last)}): it did not come from this log",
                cursor=cursor,
            )
        return self._follow(session_id, position, Deadline(timeout), idle_s)

    def _follow(
        self, session_id: str, position: int, deadline: Deadline, idle_s: float
    ) -> Iterator[SessionEvent | None]:
        idle_since = time.monotonic()
        while True:
            rows = self._log.after(session_id, position, self._batch)
            if rows and position > 0 and rows[0][0] > position + 1:
                position = rows[0][0] - 1
                yield Gap(
                    session_id=session_id,
                    reason="trimmed",
                    view=self._view(session_id),
                    at_ms=now_ms(),
                    cursor=db_cursor(position),
                )
            for seq, record in rows:
                position = seq
                yield event_from_record(record, db_cursor(seq))
            if rows:
                idle_since = time.monotonic()
            if len(rows) < self._batch:  # caught up
                wait = deadline.left(self._poll_s)
                if wait <= 0:
                    return
                time.sleep(wait)
                if time.monotonic() - idle_since >= idle_s:
                    idle_since = time.monotonic()
                    yield None
