"""A turn between its steps, and what one step is told: typed values the protocol works on.

The store keeps a `TurnState` in `lash_active_turns` between steps, so the next step can run
on any worker; the step driver builds a `StepContext` from the session's policy and tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lash_tasks.machine.messages import Message, ToolManifest
from lash_tasks.machine.tool_budget import ToolOutputBudget

StopReason = Literal[
    "cancelled",
    "max_turns",
    "provider_error",
    "provider_unavailable",
    "tool_failure",
    "runtime_error",
]


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended. `finished` carries the final answer; `stopped` names why."""

    status: Literal["finished", "stopped"]
    reason: StopReason | None = None
    text: str = ""
    retryable: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "text": self.text,
            "retryable": self.retryable,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TurnOutcome:
        return cls(
            status=data["status"],
            reason=data.get("reason"),
            text=data.get("text", ""),
            retryable=bool(data.get("retryable", False)),
            detail=dict(data.get("detail", {})),
        )


@dataclass(frozen=True)
class ClaimRef:
    """A claim the turn settles when it ends: the rows taken under `claim_id`."""

    claim_id: str
    claim_token: str


@dataclass(frozen=True)
class ReplyRoute:
    """Where the outcome of the turn that answers `input_id` is sent: a Celery task on a
    queue, named by the input's `reply_to`."""

    input_id: str
    task: str
    queue: str

    def to_json(self) -> dict[str, str]:
        return {"input_id": self.input_id, "task": self.task, "queue": self.queue}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplyRoute:
        return cls(str(data["input_id"]), str(data["task"]), str(data["queue"]))

    @classmethod
    def of_input(cls, input_id: str, payload: Mapping[str, Any]) -> ReplyRoute | None:
        """The route an input's JSON names (validated at ingress), if any."""
        reply = payload.get("reply_to")
        if not isinstance(reply, Mapping):
            return None
        return cls(input_id, str(reply["task"]), str(reply["queue"]))


@dataclass(frozen=True)
class TurnState:
    """A turn in progress, exactly as the store keeps it between steps.

    `opening` holds the messages that start the turn until its first step commits them, so a
    first step re-run after a crash rebuilds the very same nodes. `attempts` counts the starts
    of the current step (1 = first); `last_error` is why an earlier start failed.
    """

    turn_id: str
    step_index: int = 0
    input_claim: ClaimRef | None = None
    queue_claim: ClaimRef | None = None
    input_ids: tuple[str, ...] = ()
    batch_ids: tuple[str, ...] = ()
    opening: tuple[Message, ...] = ()
    branch_from: str | None = None
    cancel_requested: bool = False
    attempts: int = 1
    last_error: dict[str, Any] | None = None
    # Routes of the turn's own inputs that asked for a reply (steer inputs bring theirs).
    replies: tuple[ReplyRoute, ...] = ()

    def next_step(self) -> TurnState:
        """The turn after a committed step: one step on, opened, its attempts reset."""
        return replace(
            self,
            step_index=self.step_index + 1,
            opening=(),
            branch_from=None,
            attempts=0,
            last_error=None,
        )


@dataclass(frozen=True)
class StepContext:
    """What a step knows of its session: the model, the tools, the limits.

    `last_chance` is set on the step's final delivery (no retry will follow): a transient
    LLM failure then ends the turn instead of giving the step up to be retried.
    """

    session_id: str
    model: str
    max_turns: int
    provider: str = "scripted"
    system_prompt: str | None = None
    tools: tuple[ToolManifest, ...] = ()
    budget: ToolOutputBudget = field(default_factory=ToolOutputBudget)
    max_attempts: int = 5
    last_chance: bool = False
