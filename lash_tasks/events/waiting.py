"""Waiting for an input's answer, woken by events instead of polling the database.

The wait reads the session's events from a cursor taken *before* its first look at the
input row, so an ending that happens in between is seen either by that look or as an
event. A `turn_finished`, `turn_stopped` or `input_cancelled` triggers one confirming read
of the row (the database is the truth; the event only says when to look). Events are best
effort, so the row is also re-read every `recheck_s` as a backstop — every `poll_s` until
the session's events have shown they flow (workers that publish none, as during a rolling
upgrade, must not make a waiter slow). With no working event source it polls every `poll_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lash_tasks.errors import EventsUnavailable, InvalidCursor, NotFound, WaitTimeout
from lash_tasks.events.sources import EventSource
from lash_tasks.events.vocabulary import TURN_ENDS, SessionEvent
from lash_tasks.store.records import InputState
from lash_tasks.store.store import Store
from lash_tasks.views import TurnAnswer

log = logging.getLogger(__name__)
EventCallback = Callable[[SessionEvent], None]
_WAKING = (*TURN_ENDS, "input_cancelled")


def input_answer(store: Store, session_id: str, input_id: str) -> TurnAnswer:
    """The input's state now, with its turn's outcome once it ended."""
    row = store.inputs.get(session_id, input_id)
    if row is None:
        raise NotFound(f"input {input_id!r} of session {session_id!r} does not exist")
    outcome = None
    if row.state in (InputState.COMPLETED, InputState.CANCELLED) and row.turn_id is not None:
        stamp = store.turns.result(session_id, row.turn_id)
        outcome = (stamp or {}).get("outcome")
    return TurnAnswer(input_id=input_id, state=row.state, turn_id=row.turn_id, outcome=outcome)


def wait_for_input(
    store: Store,
    source: EventSource | None,
    session_id: str,
    input_id: str,
    *,
    timeout: float = 60.0,
    cursor: str | None = None,
    on_event: EventCallback | None = None,
    poll_s: float = 0.1,
    recheck_s: float = 1.0,
) -> TurnAnswer:
    """Block until the input's turn ended or it was cancelled; `WaitTimeout` after `timeout`.

    `on_event` sees every event from `cursor` (from `source.tail`, taken before the input
    was enqueued) up to the answer, even when the turn ended before the wait began."""
    deadline = time.monotonic() + timeout
    if source is not None and cursor is None:
        try:
            cursor = source.tail(session_id)
        except EventsUnavailable as exc:
            log.warning("waiting by polling the database: %s", exc.message)
            source = None
    answer = input_answer(store, session_id, input_id)
    if source is not None and not answer.done:
        try:
            answer, cursor = _wait_on_events(
                store, source, session_id, answer, cursor, deadline, on_event, poll_s, recheck_s
            )
        except EventsUnavailable as exc:
            log.warning("events stopped; waiting by polling the database: %s", exc.message)
            source = None
    while not answer.done and time.monotonic() < deadline:
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
        answer = input_answer(store, session_id, input_id)
    if not answer.done:
        raise WaitTimeout(
            f"input {input_id!r} still {answer.state} after {timeout:.0f} s",
            session_id=session_id,
            input_id=input_id,
        )
    if source is not None and on_event is not None:
        _drain(source, session_id, cursor, on_event)
    return answer


def _wait_on_events(
    store: Store,
    source: EventSource,
    session_id: str,
    answer: TurnAnswer,
    cursor: str | None,
    deadline: float,
    on_event: EventCallback | None,
    poll_s: float,
    recheck_s: float,
) -> tuple[TurnAnswer, str | None]:
    left = max(0.0, deadline - time.monotonic())
    flowing = False
    next_check = time.monotonic() + poll_s
    for event in source.follow(session_id, cursor, timeout=left, idle_s=poll_s):
        if event is not None:
            flowing = True
            cursor = event.cursor
            if on_event is not None:
                on_event(event)
        now = time.monotonic()
        woken = event is not None and event.type in _WAKING
        if woken or now >= next_check:
            answer = input_answer(store, session_id, answer.input_id)
            if answer.done:
                if flowing and not woken and on_event is not None:
                    cursor = _await_turn_end(source, session_id, cursor, on_event)
                break
            next_check = now + (recheck_s if flowing else poll_s)
    return answer, cursor


# How long a reader that saw the answer in the database before its turn's closing events
# waits for them: a worker publishes them right after its commit.
CLOSING_EVENTS_GRACE_S = 1.0


def _await_turn_end(
    source: EventSource, session_id: str, cursor: str | None, on_event: EventCallback
) -> str | None:
    """The database said the turn ended before its events did (the backstop re-read came
    first): hand over its closing events too, waiting a moment for them, so a reader sees
    the turn end the same way however the wait learned of it."""
    try:
        for event in source.follow(session_id, cursor, timeout=CLOSING_EVENTS_GRACE_S, idle_s=0.05):
            if event is None:
                continue
            cursor = event.cursor
            on_event(event)
            if event.type in TURN_ENDS:
                break
    except (EventsUnavailable, InvalidCursor) as exc:
        log.warning("could not show the turn's closing events: %s", exc.message)
    return cursor


def _drain(
    source: EventSource, session_id: str, cursor: str | None, on_event: EventCallback
) -> None:
    """Hand over the events already published after `cursor` without waiting for more: a
    turn that ended before (or while) the database said so still shows all of itself."""
    try:
        for event in source.follow(session_id, cursor, timeout=0):
            if event is not None:
                on_event(event)
    except (EventsUnavailable, InvalidCursor) as exc:
        log.warning("could not show the turn's last events: %s", exc.message)
