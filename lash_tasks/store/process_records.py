"""Values the process registry (`processes.py`) hands out and takes in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lash_tasks.machine.processes import Disposition, LeaseView, ProcessStatus


@dataclass(frozen=True)
class ProcessRecord:
    """A process as stored. `session_id`/`wake_session_id` are None once that session was
    deleted. `lease_owner` is set while a worker holds the process lease (maybe expired)."""

    process_id: str
    kind: str
    disposition: Disposition
    status: ProcessStatus
    session_id: str | None
    wake_session_id: str | None
    registration_hash: str
    registration: dict[str, Any]
    result: dict[str, Any] | None
    lease_owner: str | None
    lease_incarnation_id: str | None
    lease_expires_at: int | None
    fencing_token: int
    first_started_at: int | None
    change_seq: int
    created_at: int
    updated_at: int

    @property
    def input(self) -> dict[str, Any]:
        return dict(self.registration.get("input") or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "kind": self.kind,
            "disposition": self.disposition.value,
            "status": self.status.value,
            "session_id": self.session_id,
            "wake_session_id": self.wake_session_id,
            "result": self.result,
            "lease_owner": self.lease_owner,
            "lease_expires_at": self.lease_expires_at,
            "fencing_token": self.fencing_token,
            "first_started_at": self.first_started_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ProcessEvent:
    process_id: str
    seq: int
    event_type: str
    idempotency_key: str | None
    payload: dict[str, Any]
    occurred_at: int


@dataclass(frozen=True)
class ProcessFence:
    """What a holder of the process lease presents to renew, release or complete."""

    process_id: str
    owner_id: str
    lease_token: str
    fencing_token: int


@dataclass(frozen=True)
class ProcessLease:
    """The process lease, taken. `found` is how the lease was before: what recovery
    decides on (`recovery_decision`)."""

    process_id: str
    owner_id: str
    incarnation_id: str
    lease_token: str
    fencing_token: int
    expires_at: int
    found: LeaseView
    record: ProcessRecord
    # Who held it before (evidence when an owner_bound process is abandoned).
    previous_owner: str | None = None
    previous_incarnation_id: str | None = None

    @property
    def fence(self) -> ProcessFence:
        return ProcessFence(self.process_id, self.owner_id, self.lease_token, self.fencing_token)


@dataclass(frozen=True)
class ProcessBusy:
    """A live holder (not provably dead) has the lease; `retry_after_ms` is when it
    would be free."""

    process_id: str
    holder_owner_id: str
    retry_after_ms: int


@dataclass(frozen=True)
class Completion:
    """A process completed (or found completed: `replayed`). `wake_batch_id` names the wake
    its wake target got (None without a live wake target)."""

    record: ProcessRecord
    event: ProcessEvent
    replayed: bool
    wake_batch_id: str | None
    wake_session_id: str | None


@dataclass(frozen=True)
class ProcessChanges:
    """A page of the change feed: records changed after the cursor, and the next cursor."""

    records: tuple[ProcessRecord, ...]
    cursor: int


@dataclass(frozen=True)
class RevokedSession:
    """What deleting a session did to the processes it was tied to."""

    revoked_grants: int
    cleared_wakes: int
    orphaned_process_ids: tuple[str, ...]


TerminalStatus = Literal["completed", "failed", "cancelled", "abandoned"]
