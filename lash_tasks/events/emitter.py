"""`StepEvents`: what one turn step attempt tells its session's live readers.

The step driver gets one `StepEvents` per attempt from `StepEventsFactory.for_step` and
calls it as the attempt goes. With Redis every event is published as it happens; without
it (the embedded default) the events a commit makes true ride in that commit
(`CommitDraft.events`) into `lash_session_events`, and text deltas go nowhere.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lash_tasks.events.publisher import (
    EventPublisher,
    NullEventPublisher,
    RedisEventPublisher,
)
from lash_tasks.events.vocabulary import (
    InputAccepted,
    SessionEvent,
    StepCommitted,
    StepDiscarded,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    TurnStarted,
    TurnStopped,
    event_record,
)
from lash_tasks.settings import Settings

# How long the end of a step may wait for its events to reach Redis, so that the next step
# (perhaps on another worker) cannot publish ahead of them. Bounded: a slow Redis costs this
# at most, once per step.
FLUSH_TIMEOUT_S = 0.05


@dataclass
class StepEvents:
    """The events of one step attempt, bound to its session, turn, step index and attempt id.

    When the driver calls each method:

    - `turn_started(input_ids)`: in the first step of a turn, once its open transaction has
      claimed the turn's inputs (ids of those inputs).
    - `input_accepted(input_ids)`: once the open transaction accepted steer inputs into the
      running turn.
    - `text_delta(text)`: as the LLM provider's `on_text_delta` callback, for each piece of
      the answer as it streams. Provisional until `committed()`.
    - `tool_call_started(call_id, name)`: just before a tool call runs (or its journaled
      outcome is replayed).
    - `tool_call_finished(call_id, name, duration_ms, error)`: when it returned; `error` is
      the tool's error message, None on success.
    - `commit_events(head_revision, outcome, input_ids)`: while building the close commit's
      draft; pass its result as `CommitDraft.events`. `head_revision` is the revision the
      commit will make; `outcome` the turn's outcome JSON on a final commit, else None;
      `input_ids` the inputs the turn answers.
    - `committed()`: right after the close transaction returned.
    - `discarded(reason)`: instead of `committed()`, whenever the attempt's results are
      thrown away (lease lost, head conflict, a retryable failure that re-runs the step).
    - `close()`: once at the very end of the step, before any re-poke.

    Every method is cheap and never raises: live events must not fail or slow a turn.
    """

    publisher: EventPublisher
    database_log: bool
    session_id: str
    turn_id: str | None
    step: int | None
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    clock: Callable[[], float] = time.time
    _log: list[SessionEvent] = field(default_factory=list, init=False, repr=False)
    _ending: list[SessionEvent] = field(default_factory=list, init=False, repr=False)

    def _ids(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "step": self.step,
            "attempt": self.attempt,
            "at_ms": int(self.clock() * 1000),
        }

    def _emit(self, event: SessionEvent) -> None:
        # Committed kinds are also kept for the database log; deltas never are.
        if self.database_log and not isinstance(event, TextDelta):
            self._log.append(event)
        self.publisher.publish(event)

    def turn_started(self, input_ids: Sequence[str] = ()) -> None:
        self._emit(TurnStarted(**self._ids(), input_ids=tuple(input_ids)))

    def input_accepted(self, input_ids: Sequence[str]) -> None:
        self._emit(InputAccepted(**self._ids(), input_ids=tuple(input_ids)))

    def text_delta(self, text: str) -> None:
        if text:
            self._emit(TextDelta(**self._ids(), text=text))

    def tool_call_started(self, call_id: str, name: str) -> None:
        self._emit(ToolCallStarted(**self._ids(), call_id=call_id, name=name))

    def tool_call_finished(
        self, call_id: str, name: str, duration_ms: int, error: str | None = None
    ) -> None:
        self._emit(
            ToolCallFinished(
                **self._ids(), call_id=call_id, name=name, duration_ms=duration_ms, error=error
            )
        )

    def commit_events(
        self,
        head_revision: int,
        outcome: dict[str, Any] | None = None,
        input_ids: Sequence[str] = (),
    ) -> tuple[dict[str, Any], ...]:
        """The JSON records for `CommitDraft.events` (empty when Redis carries the events)."""
        ids = self._ids()
        self._ending = [StepCommitted(**ids, head_revision=head_revision)]
        if outcome is not None:
            end = TurnFinished if outcome.get("status") == "finished" else TurnStopped
            self._ending.append(
                end(**ids, outcome=outcome, input_ids=tuple(input_ids), head_revision=head_revision)
            )
        if not self.database_log:
            return ()
        return tuple(event_record(e) for e in [*self._log, *self._ending])

    def committed(self) -> None:
        for event in self._ending:
            self.publisher.publish(event)
        self._ending = []

    def discarded(self, reason: str) -> None:
        self._ending = []
        self._log = []
        self.publisher.publish(StepDiscarded(**self._ids(), reason=reason))

    def close(self) -> None:
        self.publisher.flush(FLUSH_TIMEOUT_S)


@dataclass
class StepEventsFactory:
    """Builds each step attempt's `StepEvents`. One per worker process (it owns the
    publisher's background thread)."""

    publisher: EventPublisher
    database_log: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> StepEventsFactory:
        if settings.redis_url:
            return cls(publisher_from_settings(settings), database_log=False)
        return cls(NullEventPublisher(), database_log=True)

    @classmethod
    def disabled(cls) -> StepEventsFactory:
        """No live events and no database log (tests and benchmarks that measure without)."""
        return cls(NullEventPublisher(), database_log=False)

    def for_step(self, session_id: str, turn_id: str | None, step: int | None) -> StepEvents:
        return StepEvents(self.publisher, self.database_log, session_id, turn_id, step)

    def close(self) -> None:
        self.publisher.close()


def publisher_from_settings(settings: Settings) -> EventPublisher:
    if not settings.redis_url:
        return NullEventPublisher()
    return RedisEventPublisher(
        settings.redis_url, maxlen=settings.events_maxlen, max_age_s=settings.events_max_age_s
    )
