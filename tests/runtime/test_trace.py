"""Trace sinks: JSONL records carry the documented envelope; a failing sink never fails a turn."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lash_tasks.runtime.trace import (
    TRACE_SCHEMA_VERSION,
    JsonlTraceSink,
    MemoryTraceSink,
    Tracer,
)
from tests.runtime.conftest import Harness

CALC = (
    '[{"match": "calc", '
    '"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]}]'
)
TURN_EVENTS = {
    "turn_started",
    "llm_call_started",
    "llm_call_completed",
    "tool_call_completed",
    "turn_step_committed",
    "turn_completed",
}


class ExplodingSink:
    """A sink whose every append fails."""

    def __init__(self) -> None:
        self.attempts = 0

    def append(self, record: dict[str, Any]) -> None:
        self.attempts += 1
        raise OSError("trace disk is full")


def test_jsonl_records_carry_the_trace_envelope(harness: Harness, tmp_path: Path) -> None:
    """Each JSONL line has schema_version, a unique id, an ISO timestamp, context and type."""
    path = tmp_path / "trace.jsonl"
    core, _ = harness.core(CALC, sink=JsonlTraceSink(path))
    sid = harness.session()
    final = harness.turn(core, sid, "calc please")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records
    ids = set()
    for record in records:
        assert record["schema_version"] == TRACE_SCHEMA_VERSION
        assert isinstance(record["id"], str) and record["id"]
        ids.add(record["id"])
        assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
        assert record["context"]["session_id"] == sid
        assert "turn_id" in record["context"]
        assert isinstance(record["type"], str)
    assert len(ids) == len(records)
    types = [r["type"] for r in records]
    assert set(types) >= TURN_EVENTS
    assert "session_restored" in types
    for record in records:
        if record["type"] in TURN_EVENTS:
            assert record["context"]["turn_id"] == final.turn_id
    completed = [r for r in records if r["type"] == "turn_completed"]
    assert len(completed) == 1
    assert completed[0]["head_revision"] == final.head_revision
    assert types.index("turn_started") < types.index("turn_completed")


def test_failing_sink_never_fails_a_turn(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A sink that raises on every record: the turn still finishes and commits; one warning."""
    sink = ExplodingSink()
    core, _ = harness.core(CALC, sink=sink)
    sid = harness.session()
    with caplog.at_level(logging.WARNING, logger="lash_tasks.runtime.trace"):
        final = harness.turn(core, sid, "calc please")
    assert final.outcome is not None and final.outcome["text"] == "done: 5"
    assert sink.attempts > 3
    warnings = [r for r in caplog.records if r.name == "lash_tasks.runtime.trace"]
    assert len(warnings) == 1
    assert harness.store.turns.active(sid) is None


def test_tracer_without_sink_and_memory_sink() -> None:
    """A tracer with no sink drops records; a memory sink keeps them in order."""
    Tracer().emit("anything", "s1")
    sink = MemoryTraceSink()
    tracer = Tracer(sink)
    tracer.emit("first", "s1", "turn_1", step=0)
    tracer.emit("second", "s1")
    assert [r["type"] for r in sink.records] == ["first", "second"]
    assert sink.records[0]["context"] == {"session_id": "s1", "turn_id": "turn_1"}
    assert sink.records[0]["step"] == 0
