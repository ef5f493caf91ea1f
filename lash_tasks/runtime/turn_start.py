"""Pick the step's work: resume the active turn, else commands, inputs, queued turn work."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lash_tasks.machine import Fence, Message
from lash_tasks.runtime.assembly import SessionRuntime
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.store.contracts import TurnStore
from lash_tasks.store.records import QueueClaim


@dataclass(frozen=True)
class StepWork:
    """The turn one step advances, with the claims it must settle when the turn ends."""

    turn_id: str
    step_index: int
    input_claim_id: str | None = None
    input_claim_token: str | None = None
    queue_claim_id: str | None = None
    queue_claim_token: str | None = None
    input_ids: tuple[str, ...] = ()
    batch_ids: tuple[str, ...] = ()
    new_messages: tuple[Message, ...] = ()
    branch_from: str | None = None
    cancel_requested: bool = False
    # Which start of this step this is (1 = first), and the last failure of an earlier one.
    attempt: int = 1
    last_error: dict[str, Any] | None = None

    @property
    def is_new_turn(self) -> bool:
        return self.step_index == 0 and bool(self.new_messages)

    def claim_state(self) -> dict[str, Any]:
        """What the active-turn row must remember for a later step on another worker."""
        return {
            "input_claim_token": self.input_claim_token,
            "queue_claim_token": self.queue_claim_token,
            "input_ids": list(self.input_ids),
            "batch_ids": list(self.batch_ids),
            "opening": [m.to_json() for m in self.new_messages],
            "branch_from": self.branch_from,
        }


@dataclass(frozen=True)
class Started:
    work: StepWork
    command: QueueClaim | None = None


def resume_or_claim(core: LashCore, runtime: SessionRuntime, fence: Fence) -> Started | None:
    store = core.require_store()
    active = runtime.active_turn
    if active is not None:
        attempt = store.turns.restamp_claims(fence, active.input_claim_id, active.queue_claim_id)
        state = active.state
        # A turn whose first step never committed opens again with the same messages, so the
        # re-run builds the same nodes and replays its journaled effects.
        first = active.step_index == 0
        return Started(
            StepWork(
                turn_id=active.turn_id,
                step_index=active.step_index,
                input_claim_id=active.input_claim_id,
                input_claim_token=state.get("input_claim_token"),
                queue_claim_id=active.queue_claim_id,
                queue_claim_token=state.get("queue_claim_token"),
                input_ids=tuple(state.get("input_ids", ())),
                batch_ids=tuple(state.get("batch_ids", ())),
                new_messages=tuple(
                    Message.from_json(m) for m in (state.get("opening", ()) if first else ())
                ),
                branch_from=state.get("branch_from") if first else None,
                cancel_requested=active.cancel_requested,
                attempt=attempt.number,
                last_error=attempt.last_error,
            )
        )
    command = store.queue.claim_leading_command(fence)
    if command is not None:
        return Started(StepWork(turn_id="", step_index=0), command=command)
    claim = store.inputs.claim_next_turn(fence)
    if claim is not None:
        input_ids = tuple(i.input_id for i in claim.inputs)
        branch = claim.inputs[0].input.get("branch_from")
        return _begin(
            store.turns,
            fence,
            "inputs",
            input_ids,
            StepWork(
                turn_id="",
                step_index=0,
                input_claim_id=claim.claim_id,
                input_claim_token=claim.claim_token,
                input_ids=input_ids,
                new_messages=tuple(user_message(i.input) for i in claim.inputs),
                branch_from=str(branch) if branch else None,
            ),
        )
    queued = store.queue.claim_turn_work(fence)
    if queued is not None:
        batch_ids = tuple(b.batch_id for b in queued.batches)
        return _begin(
            store.turns,
            fence,
            "queue",
            batch_ids,
            StepWork(
                turn_id="",
                step_index=0,
                queue_claim_id=queued.claim_id,
                queue_claim_token=queued.claim_token,
                batch_ids=batch_ids,
                new_messages=tuple(wake_message(p) for b in queued.batches for p in b.payloads),
            ),
        )
    return None


def _begin(
    turns: TurnStore, fence: Fence, kind: str, claimed_ids: tuple[str, ...], work: StepWork
) -> Started:
    """Record the turn as active before its first step runs: from now on it can be
    interrupted, and a crash resumes it rather than claiming its inputs again. The store
    names the turn (its ids must never repeat within the session)."""
    turn = turns.begin(
        fence,
        kind,
        claimed_ids,
        input_claim_id=work.input_claim_id,
        queue_claim_id=work.queue_claim_id,
        state=work.claim_state(),
    )
    return Started(replace(work, turn_id=turn.turn_id))


def user_message(payload: dict[str, Any]) -> Message:
    return Message(
        "user",
        str(payload.get("text", "")),
        attachments=tuple(str(a) for a in payload.get("attachments", ())),
    )


def wake_message(payload: dict[str, Any]) -> Message:
    """Queued turn work reaches the model as a user-role notice, never as a command."""
    if payload.get("type") == "process_wake":
        status = payload.get("status", "finished")
        summary = payload.get("summary", "")
        return Message(
            "user", f"[background process {payload.get('process_id')} {status}] {summary}".strip()
        )
    return Message("user", str(payload.get("text", payload)))
