"""Which queued work a claim takes, as pure rules over candidates in enqueue order.

Session commands drain one at a time and are never skipped: turn work behind a
command waits for it. Turn work takes an exclusive batch alone, or a run of
`join` batches that share a delivery policy and a merge key. A running turn, at a
step boundary, takes only work whose delivery policy is `earliest_safe_boundary`
and only from the head of the queue (lash's checkpoint claim): work queued ahead
of it for after the turn keeps its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    work_class: str
    slot_policy: str
    merge_key: str | None
    delivery_policy: str = "after_current_turn"


def select_leading_command(candidates: Sequence[Candidate]) -> int:
    """1 if the head candidate is a session command, else 0."""
    return 1 if candidates and candidates[0].work_class == "session_command" else 0


def select_turn_work_prefix(candidates: Sequence[Candidate], max_batches: int) -> int:
    """How many leading candidates one turn claims (0 when the head is not turn work)."""
    if not candidates or max_batches <= 0 or candidates[0].work_class != "turn_work":
        return 0
    head = candidates[0]
    if head.slot_policy != "join":
        return 1
    count = 1
    for candidate in candidates[1:max_batches]:
        if (
            candidate.work_class != "turn_work"
            or candidate.slot_policy != "join"
            or candidate.merge_key != head.merge_key
            or candidate.delivery_policy != head.delivery_policy
        ):
            break
        count += 1
    return count


def select_boundary_work_prefix(candidates: Sequence[Candidate], max_batches: int) -> int:
    """How many leading candidates a running turn takes at a step boundary: the turn-work
    prefix, when its head may be delivered at the earliest safe boundary (else 0)."""
    if not candidates or candidates[0].delivery_policy != "earliest_safe_boundary":
        return 0
    return select_turn_work_prefix(candidates, max_batches)
