"""What the runtime may use of the store: one small protocol per thing it needs.

`Store` (store.py) satisfies `RuntimeStore`, part by part; the runtime is typed against
these, so a reader sees which calls a module makes, and a test double needs only those.
The attachment facade's contract lives in `lash_tasks.attachments.manifest` (the
attachments package does not import the store); `Manifest` satisfies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lash_tasks.attachments.manifest import AttachmentManifest
from lash_tasks.machine import CommitDraft, CommitResult, Fence, Node, SessionPolicy, TurnState
from lash_tasks.machine.processes import ProcessRegistration
from lash_tasks.store.process_records import (
    Completion,
    ProcessBusy,
    ProcessFence,
    ProcessLease,
    ProcessRecord,
    TerminalStatus,
)
from lash_tasks.store.records import (
    Busy,
    ExecuteEffect,
    InputDraft,
    Lease,
    LoadedSession,
    PendingInput,
    ReadScope,
    RecordedEffect,
    SessionRecord,
)
from lash_tasks.store.step_records import (
    ClosedStep,
    CloseRequest,
    EffectHolder,
    EffectOutcome,
    EffectSlot,
    JournalDecision,
    OpenedStep,
    OpenRequest,
    Planner,
)


class SessionLoader(Protocol):
    """What runtime assembly reads, and the one write of an open: filling an empty policy."""

    def record(self, session_id: str) -> SessionRecord: ...

    def fill_policy(self, session_id: str, policy: SessionPolicy) -> SessionRecord: ...

    def load(self, session_id: str, scope: ReadScope | None = None) -> LoadedSession: ...

    def load_node(self, session_id: str, node_id: str) -> Node | None: ...

    def orphaned_node_ids(self, session_id: str) -> list[str]: ...


class LeaseStore(Protocol):
    """The session lease, for the step and its lease keeper."""

    def try_claim(
        self, session_id: str, owner_id: str, incarnation_id: str, ttl_ms: int = ...
    ) -> Lease | Busy: ...

    def renew(self, fence: Fence, ttl_ms: int = ...) -> int: ...

    def release(self, fence: Fence) -> bool: ...


class TurnStore(Protocol):
    """What bounds a turn's steps: failures recorded, attempts taken back, the cancel flag."""

    def active(self, session_id: str) -> TurnState | None: ...

    def result(self, session_id: str, turn_id: str) -> dict[str, Any] | None: ...

    def record_step_failure(self, fence: Fence, turn_id: str, error: dict[str, Any]) -> None: ...

    def forgive_step_attempt(self, session_id: str, turn_id: str, step_index: int) -> None: ...

    def cancel_requested(self, session_id: str, turn_id: str) -> bool: ...


class StepStore(Protocol):
    """The step's transactions (store/step_transactions.py)."""

    def open(self, request: OpenRequest, planner: Planner) -> OpenedStep | Busy: ...

    def journal_tools(
        self,
        fence: Fence,
        llm: EffectOutcome | None,
        slots: Sequence[EffectSlot],
        effects: EffectHolder,
    ) -> list[JournalDecision]: ...

    def close(self, request: CloseRequest) -> ClosedStep: ...


class CommitStore(Protocol):
    """The fenced commit of a step."""

    def commit(self, draft: CommitDraft) -> CommitResult: ...


class JournalStore(Protocol):
    """The effect journal, for the durable effect host (and the step asking for a replay)."""

    def prepare(
        self,
        *,
        scope_id: str,
        replay_key: str,
        session_id: str,
        turn_id: str | None,
        envelope_hash: str,
        owner: str,
        ttl_ms: int,
        incarnation_id: str | None = None,
    ) -> ExecuteEffect | RecordedEffect: ...

    def renew(self, scope_id: str, replay_key: str, lease_token: str, ttl_ms: int) -> None: ...

    def finalize(
        self,
        scope_id: str,
        replay_key: str,
        lease_token: str,
        *,
        outcome: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None: ...

    def release(self, scope_id: str, replay_key: str, lease_token: str) -> None: ...

    def has(self, scope_id: str, replay_key: str) -> bool: ...


class ProcessStore(Protocol):
    """The process registry, for the process runner and the tools that start processes."""

    def register(self, registration: ProcessRegistration) -> tuple[ProcessRecord, bool]: ...

    def get(self, process_id: str) -> ProcessRecord | None: ...

    def try_claim(
        self, process_id: str, owner_id: str, incarnation_id: str, ttl_ms: int = ...
    ) -> ProcessLease | ProcessBusy: ...

    def renew(self, fence: ProcessFence, ttl_ms: int = ...) -> int: ...

    def release(self, fence: ProcessFence) -> bool: ...

    def mark_started(self, fence: ProcessFence) -> int: ...

    def complete(
        self,
        fence: ProcessFence | None,
        process_id: str,
        status: TerminalStatus,
        result: Mapping[str, Any],
        idempotency_key: str,
        *,
        summary: str = ...,
    ) -> Completion: ...


class ChildSessionStore(Protocol):
    """What a subagent process needs to start and read its child session."""

    def create(
        self,
        session_id: str,
        policy: SessionPolicy | None,
        *,
        parent_session_id: str | None = ...,
        parent_process_id: str | None = ...,
    ) -> SessionRecord: ...

    def record(self, session_id: str) -> SessionRecord: ...

    def exists(self, session_id: str) -> bool: ...


class ChildInputStore(Protocol):
    def enqueue(self, draft: InputDraft) -> PendingInput: ...

    def get(self, session_id: str, input_id: str) -> PendingInput | None: ...


class SessionStore(SessionLoader, ChildSessionStore, Protocol):
    """Session reads for assembly, and creating a subagent's child session."""


class RuntimeStore(Protocol):
    """Everything a `LashCore` reaches in the store, part by part."""

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def steps(self) -> StepStore: ...

    @property
    def leases(self) -> LeaseStore: ...

    @property
    def turns(self) -> TurnStore: ...

    @property
    def commits(self) -> CommitStore: ...

    @property
    def journal(self) -> JournalStore: ...

    @property
    def manifest(self) -> AttachmentManifest: ...

    @property
    def processes(self) -> ProcessStore: ...

    @property
    def inputs(self) -> ChildInputStore: ...

    @property
    def durability_tier(self) -> str: ...

    def close(self) -> None: ...
