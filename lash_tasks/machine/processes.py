"""Background processes as pure values and rules (DESIGN §6).

A process is durable background work owned by a session: a subagent's turn in a child
session, a background tool run. Its registration is hashed, so registering the same id
again is idempotent and a different registration under that id is a conflict. How a
process recovers after its worker died is decided here, from facts the store reads:

    terminal                      → done      (nothing to run)
    externally_owned              → external  (the fleet never runs it)
    live holder (another worker)  → busy
    rerunnable                    → run       (again, from the start)
    owner_bound, never started    → start     (record first_started, then run)
    owner_bound, started, holder provably dead → abandon (with evidence)
    owner_bound, started, holder not provably dead → wait (elapsed time never ends it)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from lash_tasks.errors import ValidationError
from lash_tasks.machine.commit_hash import stable_hash
from lash_tasks.machine.ids import check_session_id

_PROCESS_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class Disposition(StrEnum):
    """How a process recovers when its worker is lost. Declared; there is no default."""

    RERUNNABLE = "rerunnable"
    OWNER_BOUND = "owner_bound"
    EXTERNALLY_OWNED = "externally_owned"


class ProcessStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"

    @property
    def terminal(self) -> bool:
        return self is not ProcessStatus.RUNNING


TERMINAL_STATUSES = tuple(s for s in ProcessStatus if s.terminal)


def check_process_id(process_id: object) -> str:
    """Return `process_id` if usable (like a session id), else raise `ValidationError`."""
    if not isinstance(process_id, str) or not process_id:
        raise ValidationError("process_id must be a non-empty string", field="process_id")
    if not _PROCESS_ID.match(process_id):
        raise ValidationError(
            "process_id must be 1-200 characters of letters, digits and . _ : @ -, "
            "starting with a letter or digit",
            field="process_id",
        )
    return process_id


def parse_disposition(value: object) -> Disposition:
    """The declared disposition; a missing or unknown one is refused (no default)."""
    try:
        return Disposition(str(value)) if value is not None else _no_disposition()
    except ValueError:
        known = ", ".join(d.value for d in Disposition)
        raise ValidationError(
            f"disposition must be one of {known}, got {value!r:.60}", field="disposition"
        ) from None


def _no_disposition() -> Disposition:
    raise ValidationError("a process must declare its disposition", field="disposition")


@dataclass(frozen=True)
class ProcessRegistration:
    """What registering a process says; everything here is part of its hash.

    `session_id` is the session that started it (and holds a handle grant);
    `wake_session_id` is the session its completion wakes, if any. `input` says what to
    run: for a subagent, the task and model of its child turn; for a background tool, the
    tool call.
    """

    process_id: str
    kind: str
    disposition: Disposition
    session_id: str
    input: Mapping[str, Any] = field(default_factory=dict)
    wake_session_id: str | None = None

    def __post_init__(self) -> None:
        check_process_id(self.process_id)
        if not isinstance(self.kind, str) or not _KIND.match(self.kind):
            raise ValidationError(f"process kind {self.kind!r:.40} is not a name", field="kind")
        if not isinstance(self.disposition, Disposition):
            raise ValidationError("a process must declare its disposition", field="disposition")
        check_session_id(self.session_id)
        if self.wake_session_id is not None:
            check_session_id(self.wake_session_id)
        if not isinstance(self.input, Mapping):
            raise ValidationError("process input must be an object", field="input")

    def to_json(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "kind": self.kind,
            "disposition": self.disposition.value,
            "session_id": self.session_id,
            "wake_session_id": self.wake_session_id,
            "input": dict(self.input),
        }

    @property
    def registration_hash(self) -> str:
        return registration_hash(self)


def registration_hash(registration: ProcessRegistration) -> str:
    """The identity of a registration: same id and same hash → the same process."""
    return stable_hash(registration.to_json())


def wake_source_key(process_id: str, seq: int) -> str:
    """The source key of the wake a process event sends: a retried completion wakes once."""
    return f"process:{process_id}:event:{seq}:wake"


def subagent_process_id(session_id: str, turn_id: str, call_id: str) -> str:
    """The process a `spawn_subagent` call registers: one per call, so a replayed tool call
    registers the very same process."""
    digest = hashlib.sha256(f"{session_id}:{turn_id}:{call_id}".encode()).hexdigest()[:24]
    return f"proc_{digest}"


def background_tool_process_id(session_id: str, turn_id: str, call_id: str) -> str:
    """The process a background tool call registers: one per call, like a subagent's."""
    digest = hashlib.sha256(f"tool:{session_id}:{turn_id}:{call_id}".encode()).hexdigest()[:24]
    return f"bg_{digest}"


def child_session_id(process_id: str) -> str:
    """The child session a subagent process runs its turn in."""
    return f"{process_id}.child"


LeaseView = Literal["free", "mine", "live_other", "dead_holder", "expired"]
Recovery = Literal["done", "external", "busy", "run", "start", "abandon", "wait"]


def recovery_decision(
    disposition: Disposition,
    status: ProcessStatus,
    first_started: bool,
    lease: LeaseView,
) -> Recovery:
    """What a worker that found this process does with it (see the module docstring).

    `lease` is the process lease as the worker found it: `free` (never held, or released),
    `mine` (this very incarnation holds it: a redelivered run), `live_other`, `dead_holder`
    (held by a provably dead incarnation), `expired` (ttl passed, holder not provably dead).
    """
    if status.terminal:
        return "done"
    if disposition is Disposition.EXTERNALLY_OWNED:
        return "external"
    if lease == "live_other":
        return "busy"
    if disposition is Disposition.RERUNNABLE:
        return "run"
    if not first_started:
        return "start"
    if lease == "dead_holder":
        return "abandon"
    if lease == "mine":
        return "run"  # the very worker that started it runs it on; nothing was lost
    return "wait"


def wake_payload(
    process_id: str,
    status: ProcessStatus,
    summary: str,
    *,
    call_id: str | None = None,
    attachments: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The queued-work payload a completion sends to its wake target. `attachments` name
    what the process put for the session (its full output, when the summary is cut)."""
    payload: dict[str, Any] = {
        "type": "process_wake",
        "process_id": process_id,
        "status": status.value,
        "summary": summary,
    }
    if call_id is not None:
        payload["call_id"] = call_id
    if attachments:
        payload["attachments"] = list(attachments)
    return payload
