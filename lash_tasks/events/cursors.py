"""Event cursors: a Redis Stream id (`1700000000000-3`) or a database sequence (`db-42`).

The two forms are distinct on purpose: a cursor from one source handed to the other is an
error that says so, not a silent jump to some unrelated position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lash_tasks.errors import InvalidCursor

_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_DB_SEQ = re.compile(r"^db-(\d{1,19})$")
_U64_MAX = 2**64 - 1


@dataclass(frozen=True, order=True)
class StreamId:
    """A Redis Stream entry id: milliseconds, then a sequence within the millisecond."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    def predecessor(self) -> StreamId:
        """The greatest id before this one: reading after it starts exactly at this id."""
        if self.seq > 0:
            return StreamId(self.ms, self.seq - 1)
        if self.ms > 0:
            return StreamId(self.ms - 1, _U64_MAX)
        return self

    @classmethod
    def parse(cls, raw: str | bytes) -> StreamId:
        text = raw.decode() if isinstance(raw, bytes) else raw
        match = _STREAM_ID.match(text)
        if match is None:
            raise ValueError(f"not a stream id: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))


STREAM_START = StreamId(0, 0)


def parse_stream_cursor(cursor: str | None) -> StreamId | None:
    """The stream id a Redis reader resumes after; None reads from the oldest retained."""
    if cursor is None:
        return None
    _check_type(cursor)
    if _DB_SEQ.match(cursor):
        raise InvalidCursor(
            f"cursor {cursor!r} belongs to the database event log, but this deployment reads "
            "events from Redis (LASH_REDIS_URL); pass a cursor it gave you, or none",
            cursor=cursor,
        )
    try:
        parsed = StreamId.parse(cursor)
    except ValueError:
        raise InvalidCursor(
            f"cursor {cursor!r} is malformed: expected a stream id like 1700000000000-0",
            cursor=cursor,
        ) from None
    if parsed.ms > _U64_MAX or parsed.seq > _U64_MAX:
        raise InvalidCursor(f"cursor {cursor!r} is out of range", cursor=cursor)
    return parsed


def parse_db_cursor(cursor: str | None) -> int | None:
    """The sequence number a database reader resumes after; None reads from the oldest kept."""
    if cursor is None:
        return None
    _check_type(cursor)
    match = _DB_SEQ.match(cursor)
    if match is not None:
        return int(match.group(1))
    if _STREAM_ID.match(cursor):
        raise InvalidCursor(
            f"cursor {cursor!r} is a Redis Stream id, but this deployment has no Redis "
            "(LASH_REDIS_URL is unset) and reads events from the database",
            cursor=cursor,
        )
    raise InvalidCursor(
        f"cursor {cursor!r} is malformed: expected a database cursor like db-42", cursor=cursor
    )


def db_cursor(seq: int) -> str:
    return f"db-{seq}"


def _check_type(cursor: object) -> None:
    if not isinstance(cursor, str):
        raise InvalidCursor(f"cursor must be a string, got {type(cursor).__name__}")
