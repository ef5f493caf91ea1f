"""What `lash-tasks watch` prints for a person: streamed text, and which of it became void."""

from __future__ import annotations

from typing import Any

from lash_tasks.events.render import TranscriptRenderer
from lash_tasks.events.vocabulary import (
    SessionEvent,
    StepCommitted,
    StepDiscarded,
    TextDelta,
    ToolCallStarted,
    TurnFinished,
)

VOID = "[step retried; its text above is void]"


def ids(attempt: str) -> dict[str, Any]:
    return {"session_id": "s", "turn_id": "t", "step": 0, "attempt": attempt, "at_ms": 0}


def rendered(events: list[SessionEvent]) -> str:
    renderer = TranscriptRenderer()
    return "".join(renderer.render(event) for event in events)


def finished(attempt: str, text: str) -> TurnFinished:
    return TurnFinished(**ids(attempt), outcome={"status": "finished", "text": text})


def test_a_committed_answer_streams_inline_without_markers() -> None:
    """Deltas print inline; the attempt's own tool call and commit mark nothing void."""
    out = rendered(
        [
            TextDelta(**ids("a1"), text="Hello"),
            TextDelta(**ids("a1"), text=" there"),
            ToolCallStarted(**ids("a1"), call_id="c", name="calculator"),
            StepCommitted(**ids("a1"), head_revision=2),
            finished("a1", "Hello there"),
        ]
    )
    assert out.startswith("Hello there\n  [tool] calculator ...\n")
    assert out.endswith("[finished]\n")
    assert "void" not in out


def test_text_of_an_attempt_that_died_is_marked_void_when_the_retry_speaks() -> None:
    """A worker killed mid-answer publishes nothing more; the retry's first delta marks the
    dead attempt's printed text void, once."""
    out = rendered(
        [
            TextDelta(**ids("dead"), text="Hel"),
            TextDelta(**ids("retry"), text="Hello"),
            TextDelta(**ids("retry"), text=" world"),
            StepCommitted(**ids("retry"), head_revision=2),
            finished("retry", "Hello world"),
        ]
    )
    assert out == f"Hel\n  {VOID}\nHello world\n[finished]\n"


def test_a_discarded_step_is_marked_by_its_own_event() -> None:
    """step_discarded of the printed attempt marks it; no second marker follows."""
    out = rendered(
        [
            TextDelta(**ids("a1"), text="half"),
            StepDiscarded(**ids("a1"), reason="lease_lost"),
            TextDelta(**ids("a2"), text="whole"),
            StepCommitted(**ids("a2"), head_revision=2),
        ]
    )
    assert "[step discarded (lease_lost)" in out
    assert "retried" not in out
    assert out.endswith("whole")
