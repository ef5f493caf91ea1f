"""Where a session's events are read from: its Redis Stream, or the database event log.

Both give the same API. `follow` yields events in order after a cursor and `None` as an
idle tick (so a server can send keep-alives and notice a gone client); `read` yields the
events only. A cursor older than what is kept yields a `gap` event carrying the session
view, then the oldest kept events. Bad cursors raise `InvalidCursor` when `follow` or
`read` is called, before anything is yielded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from lash_tasks.events.vocabulary import SessionEvent

ViewProvider = Callable[[str], dict[str, Any]]


class EventSource(Protocol):
    def tail(self, session_id: str) -> str:
        """A cursor after every event published so far: read from it to see only new ones."""

    def follow(
        self,
        session_id: str,
        cursor: str | None = None,
        *,
        timeout: float | None = None,
        idle_s: float = 1.0,
    ) -> Iterator[SessionEvent | None]:
        """Events after `cursor` (None: from the oldest kept) for `timeout` seconds (None:
        for ever), and `None` after each `idle_s` without one."""

    def close(self) -> None: ...


def read(
    source: EventSource, session_id: str, cursor: str | None = None, timeout: float | None = None
) -> Iterator[SessionEvent]:
    """The events of `follow`, without idle ticks."""
    ticks = source.follow(session_id, cursor, timeout=timeout)
    return (event for event in ticks if event is not None)


class Deadline:
    """The time left of an optional overall timeout."""

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def left(self, cap: float) -> float:
        if self._end is None:
            return cap
        return max(0.0, min(cap, self._end - time.monotonic()))


def now_ms() -> int:
    return int(time.time() * 1000)
