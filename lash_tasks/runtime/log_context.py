"""What a log record is about: the session, turn and step the current thread is running.

Set by the step driver, read by the JSON log format (`LASH_LOG_FORMAT=json`), so every
record logged during a step — ours, the store's, an LLM provider's — carries its ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_session_id: ContextVar[str | None] = ContextVar("lash_session_id", default=None)
_turn_id: ContextVar[str | None] = ContextVar("lash_turn_id", default=None)
_step: ContextVar[int | None] = ContextVar("lash_step", default=None)


@contextmanager
def delivery(session_id: str) -> Iterator[None]:
    """Records logged inside name `session_id`; the turn and step are bound as they open."""
    tokens = (_session_id.set(session_id), _turn_id.set(None), _step.set(None))
    try:
        yield
    finally:
        _step.reset(tokens[2])
        _turn_id.reset(tokens[1])
        _session_id.reset(tokens[0])


def bind_step(turn_id: str, step: int) -> None:
    """The turn step now running (until the next one, or the delivery's end)."""
    _turn_id.set(turn_id)
    _step.set(step)


def current() -> dict[str, Any]:
    """The ids bound now (None where none is)."""
    return {"session_id": _session_id.get(), "turn_id": _turn_id.get(), "step": _step.get()}
