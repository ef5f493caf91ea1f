"""The event vocabulary's stored form and the two cursor forms (no services needed)."""

from __future__ import annotations

import json

import pytest

from lash_tasks.errors import InvalidCursor, SchemaVersionError
from lash_tasks.events.cursors import StreamId, parse_db_cursor, parse_stream_cursor
from lash_tasks.events.vocabulary import (
    Gap,
    TextDelta,
    ToolCallFinished,
    TurnFinished,
    event_from_record,
    event_json,
    event_record,
)

IDS = {"session_id": "s1", "turn_id": "t1", "step": 2, "attempt": "a1", "at_ms": 5}


def test_stored_form_round_trips_and_carries_the_cursor_only_when_read() -> None:
    """An event's record has schema_version and no cursor; reading it back sets the cursor."""
    event = ToolCallFinished(**IDS, call_id="c1", name="calculator", duration_ms=12, error=None)
    record = event_record(event)
    assert record["schema_version"] == 1
    assert "cursor" not in record
    back = event_from_record(json.loads(json.dumps(record)), "17-0")
    assert back == event.model_copy(update={"cursor": "17-0"})
    assert json.loads(event_json(back))["cursor"] == "17-0"


def test_every_event_names_session_turn_step_and_attempt() -> None:
    """The JSON form of a step's event has session_id, turn_id, step, attempt and type."""
    line = json.loads(event_json(TextDelta(**IDS, text="Hel")))
    assert {k: line[k] for k in ("type", "session_id", "turn_id", "step", "attempt")} == {
        "type": "text_delta",
        "session_id": "s1",
        "turn_id": "t1",
        "step": 2,
        "attempt": "a1",
    }


def test_unknown_schema_version_or_type_is_a_schema_error() -> None:
    """A record of another schema version, or of an unknown type, raises SchemaVersionError."""
    record = event_record(TurnFinished(**IDS, outcome={"status": "finished"}))
    with pytest.raises(SchemaVersionError, match="schema_version 2"):
        event_from_record({**record, "schema_version": 2}, "1-0")
    with pytest.raises(SchemaVersionError, match="does not match"):
        event_from_record({**record, "type": "no_such_event"}, "1-0")


def test_a_newer_writers_extra_field_is_ignored() -> None:
    """Readers ignore fields they do not know, so a newer writer does not break them."""
    record = {**event_record(Gap(session_id="s1", reason="dropped", at_ms=1)), "new_field": 1}
    assert event_from_record(record, "db-3").type == "gap"


@pytest.mark.parametrize(
    ("cursor", "message"),
    [
        ("db-3", "belongs to the database event log"),
        ("17", "malformed"),
        ("a-b", "malformed"),
        ("1-2-3", "malformed"),
    ],
)
def test_stream_cursors_refuse_what_is_not_a_stream_id(cursor: str, message: str) -> None:
    """A database cursor or a malformed string given to the Redis reader is InvalidCursor."""
    with pytest.raises(InvalidCursor, match=message):
        parse_stream_cursor(cursor)


@pytest.mark.parametrize(
    ("cursor", "message"),
    [("17-0", "is a Redis Stream id"), ("db-x", "malformed"), ("", "malformed")],
)
def test_db_cursors_refuse_what_is_not_a_database_cursor(cursor: str, message: str) -> None:
    """A stream id or a malformed string given to the database reader is InvalidCursor."""
    with pytest.raises(InvalidCursor, match=message):
        parse_db_cursor(cursor)


def test_stream_id_predecessor_is_the_greatest_smaller_id() -> None:
    """Reading after an id's predecessor starts exactly at that id."""
    assert StreamId(5, 3).predecessor() == StreamId(5, 2)
    assert StreamId(5, 0).predecessor() == StreamId(4, 2**64 - 1)
    assert StreamId(4, 2**64 - 1) < StreamId(5, 0)
