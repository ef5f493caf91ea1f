"""What the client, the CLI and the gateway hand out: pydantic models with a stable JSON form.

`model_dump(mode="json")` is the JSON a program reads (`lash-tasks ... --json` prints it);
fields are only ever added, never renamed or removed, within a major version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, computed_field

CancelOutcomeName = Literal[
    "cancelled", "already_claimed", "already_completed", "already_cancelled", "not_found"
]


class _View(BaseModel):
    # Ignore fields a newer server adds, so an older reader still parses its JSON.
    model_config = ConfigDict(frozen=True, extra="ignore")


class LeaseView(_View):
    owner: str | None
    fencing_token: int
    expires_at: int | None


class ActiveTurnView(_View):
    """The turn in progress: which inputs it claimed (its own and the steer input it took),
    how many steps it committed, and why its current step failed before, if it did."""

    turn_id: str
    steps_committed: int
    attempts: int
    cancel_requested: bool
    claimed_input_ids: list[str]
    batch_ids: list[str]
    error: str | None


class ProcessView(_View):
    """A background process the session started (a subagent, a background tool)."""

    process_id: str
    kind: str
    status: str
    disposition: str


class SessionView(_View):
    session_id: str
    head_revision: int
    provider: str | None
    model: str | None
    tools: list[str] | None
    usage: dict[str, int]
    active_turn: ActiveTurnView | None
    pending_inputs: list[str]
    lease: LeaseView
    parent_session_id: str | None = None
    processes: list[ProcessView] = []
    children: list[str] = []
    transcript: list[dict[str, Any]]


class SessionSummary(_View):
    """One session in a list: `running` (a turn is active), `waiting` (inputs pending) or
    `idle`."""

    session_id: str
    head_revision: int
    provider: str | None
    model: str | None
    activity: Literal["running", "waiting", "idle"]
    pending_inputs: int
    updated_at: int


class TurnAnswer(_View):
    """An input's state, with its turn's outcome once the turn ended."""

    input_id: str
    state: str
    turn_id: str | None
    outcome: dict[str, Any] | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        return str((self.outcome or {}).get("text", ""))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def done(self) -> bool:
        return self.state in ("completed", "cancelled")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class InputView(_View):
    """One input as submitted, where it stands, and its turn's outcome once it ended."""

    session_id: str
    input_id: str
    state: str
    ingress: str
    source_key: str
    text: str
    attachments: list[str]
    branch_from: str | None
    reply_to: dict[str, str] | None
    turn_id: str | None
    enqueued_at: int
    updated_at: int
    outcome: dict[str, Any] | None


class CancelResult(_View):
    """`outcome` when an input was named; `interrupt_requested` when the turn was asked to
    stop (False: no turn was running)."""

    session_id: str
    outcome: (
        Literal[
            "cancelled", "already_claimed", "already_completed", "already_cancelled", "not_found"
        ]
        | None
    ) = None
    interrupt_requested: bool | None = None


class DeleteReport(_View):
    """What deleting a session did. `deleted=False`: there was no such session (a no-op).
    `orphaned_process_ids`: running processes it started, left with no session holding
    them — they run on, never cancelled silently."""

    session_id: str
    deleted: bool
    orphaned_process_ids: list[str] = []
    revoked_grants: int = 0
    cleared_wakes: int = 0


class FleetStatus(_View):
    """What waits across the fleet, from the database."""

    sessions: int
    pending_inputs: int
    active_turns: int
    runnable_without_lease: int
    queued_work: int
    processes: dict[str, int] = {}
    runnable_processes_without_lease: int = 0
