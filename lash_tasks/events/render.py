"""Events as text for a person watching: the answer as it streams, tool calls, outcomes."""

from __future__ import annotations

from lash_tasks.events.vocabulary import (
    Gap,
    InputAccepted,
    InputCancelled,
    ProcessFinished,
    ProcessStarted,
    SessionEvent,
    StepDiscarded,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    TurnStarted,
    TurnStopped,
)


class TranscriptRenderer:
    """Feed events in order; each call returns the text to print (maybe empty).

    Text deltas are printed inline as they come. A turn's answer that never streamed (the
    database event log carries no deltas) is printed whole when the turn finishes. Printed
    text cannot be taken back, so a discarded step is marked instead; so is one whose worker
    died mid-answer, which says nothing: it shows as another attempt's events following
    text that no commit confirmed.
    """

    def __init__(self) -> None:
        self._mid_line = False
        self._streamed: set[str | None] = set()
        # The attempt whose printed text awaits its step_committed (or step_discarded).
        self._unconfirmed: str | None = None
        self.ended: set[str | None] = set()  # turns whose end was rendered

    def render(self, event: SessionEvent) -> str:
        void = self._superseded(event)
        if isinstance(event, TextDelta):
            self._unconfirmed = event.attempt
            self._streamed.add(event.turn_id)
            out = self._lines(void) + event.text
            self._mid_line = True
            return out
        if event.type in ("step_committed", "step_discarded") and (
            event.attempt == self._unconfirmed
        ):
            self._unconfirmed = None
        line = self._line(event)
        return self._lines(void, line)

    def _superseded(self, event: SessionEvent) -> str | None:
        """A marker when `event` comes from another attempt than the unconfirmed text."""
        if self._unconfirmed is None or event.attempt in (None, self._unconfirmed):
            return None
        self._unconfirmed = None
        return "  [step retried; its text above is void]"

    def _lines(self, *lines: str | None) -> str:
        shown = [line for line in lines if line is not None]
        if not shown:
            return ""
        out = ("\n" if self._mid_line else "") + "\n".join(shown) + "\n"
        self._mid_line = False
        return out

    def render_answer(self, text: str, state: str) -> str:
        """An answer read from the database (its turn's events were not seen)."""
        out = ("\n" if self._mid_line else "") + (text + "\n" if text else "")
        self._mid_line = False
        return out + f"[{state}]\n"

    def _line(self, event: SessionEvent) -> str | None:
        match event:
            case TurnStarted():
                return f"[turn {event.turn_id} started]"
            case ToolCallStarted():
                return f"  [tool] {event.name} ..."
            case ToolCallFinished(error=None):
                return f"  [tool] {event.name} done in {event.duration_ms} ms"
            case ToolCallFinished():
                return f"  [tool] {event.name} failed after {event.duration_ms} ms: {event.error}"
            case StepDiscarded():
                return f"  [step discarded ({event.reason}); its text above is void]"
            case TurnFinished():
                self.ended.add(event.turn_id)
                streamed = event.turn_id in self._streamed
                self._streamed.discard(event.turn_id)
                text = "" if streamed else str(event.outcome.get("text", ""))
                return (text + "\n" if text else "") + "[finished]"
            case TurnStopped():
                self.ended.add(event.turn_id)
                self._streamed.discard(event.turn_id)
                return f"[stopped: {event.outcome.get('reason') or 'stopped'}]"
            case InputAccepted():
                return f"[input accepted: {', '.join(event.input_ids)}]"
            case InputCancelled():
                return f"[input {event.input_id} cancelled]"
            case ProcessStarted():
                return f"[process {event.process_id} started]"
            case ProcessFinished():
                return f"[process {event.process_id} {event.status}]"
            case Gap():
                revision = (event.view or {}).get("head_revision")
                return f"[gap: earlier events were {event.reason}; session at revision {revision}]"
        return None  # step_committed: nothing a person needs to see
