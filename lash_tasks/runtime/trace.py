"""Trace sinks: JSONL records of session, turn, LLM-call, tool-call and usage events.

A failing sink never fails a turn: errors are logged once and swallowed.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)
TRACE_SCHEMA_VERSION = 1


class TraceSink(Protocol):
    def append(self, record: dict[str, Any]) -> None: ...


class NullTraceSink:
    def append(self, record: dict[str, Any]) -> None:
        return None


class MemoryTraceSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)


class JsonlTraceSink:
    """Appends one JSON object per line; safe across threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class Tracer:
    """Builds records and hands them to the sink, never letting a sink failure escape."""

    def __init__(self, sink: TraceSink | None = None) -> None:
        self.sink: TraceSink = sink or NullTraceSink()
        self._warned = False

    def emit(
        self, event_type: str, session_id: str, turn_id: str | None = None, **data: Any
    ) -> None:
        record = {
            "schema_version": TRACE_SCHEMA_VERSION,
            "id": uuid.uuid4().hex,
            "timestamp": datetime.now(UTC).isoformat(),
            "context": {"session_id": session_id, "turn_id": turn_id},
            "type": event_type,
            **data,
        }
        try:
            self.sink.append(record)
        except Exception as exc:  # a trace sink must never fail a turn
            if not self._warned:
                log.warning("trace sink failed (%s); further failures are silent", exc)
                self._warned = True
