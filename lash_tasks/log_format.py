"""The opt-in JSON log format (`LASH_LOG_FORMAT=json`): one JSON object per line, carrying
the session, turn and step the record was logged in, for log pipelines to index."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from lash_tasks.runtime import log_context

# Attributes Celery's task logger adds to a record.
_TASK_FIELDS = ("task_id", "task_name")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        data.update({k: v for k, v in log_context.current().items() if v is not None})
        for name in _TASK_FIELDS:
            value = getattr(record, name, None)
            if value not in (None, "???"):
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def use_json_logs(logger: logging.Logger) -> None:
    """Give every handler of `logger` the JSON format."""
    for handler in logger.handlers:
        handler.setFormatter(JsonLogFormatter())
