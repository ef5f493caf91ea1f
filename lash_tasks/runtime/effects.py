"""Effect hosts: run an effect (LLM call, tool call) at most once per replay key.

The durable host journals each outcome in the store. A step re-run after a crash
gets the recorded outcome back instead of calling the LLM or the tool again.
The inline host just executes; it is for embedded use and tests without a store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lash_tasks.errors import LashError, RecordedFailure
from lash_tasks.machine import stable_hash
from lash_tasks.runtime.step_control import InflightEffect, StepControl
from lash_tasks.store.contracts import JournalStore
from lash_tasks.store.records import ExecuteEffect

log = logging.getLogger(__name__)
Outcome = dict[str, Any]


@dataclass(frozen=True)
class EffectRequest:
    """One effect: `envelope` is what it will do; its hash must match on replay."""

    session_id: str
    turn_id: str
    replay_key: str
    envelope: dict[str, Any]

    @property
    def scope_id(self) -> str:
        return f"turn:{self.session_id}:{self.turn_id}"


class EffectHost(Protocol):
    """Runs effects; `control` is the running step's, whose keeper renews their leases."""

    durability_tier: str

    def run(
        self,
        effect: EffectRequest,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Outcome: ...

    def renew(self, control: StepControl) -> None: ...


class InlineEffectHost:
    """No journal: every call executes. Not crash-safe; for embedded use and tests."""

    durability_tier = "inline"

    def __init__(self) -> None:
        self.executed = 0

    def run(
        self,
        effect: EffectRequest,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Outcome:
        self.executed += 1
        return execute()

    def renew(self, control: StepControl) -> None:
        return None


class DurableEffectHost:
    """Journals outcomes in the store's effect journal under an effect lease."""

    durability_tier = "durable"

    def __init__(
        self,
        journal: JournalStore,
        owner: str,
        ttl_ms: int = 30_000,
        incarnation_id: str | None = None,
    ) -> None:
        self.journal = journal
        self.owner = owner
        self.incarnation_id = incarnation_id
        self.ttl_ms = ttl_ms
        self.executed = 0
        self.replayed = 0
        self._lock = threading.Lock()

    def run(
        self,
        effect: EffectRequest,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Outcome:
        decision = self.journal.prepare(
            scope_id=effect.scope_id,
            replay_key=effect.replay_key,
            session_id=effect.session_id,
            turn_id=effect.turn_id,
            envelope_hash=stable_hash(effect.envelope),
            owner=self.owner,
            ttl_ms=self.ttl_ms,
            incarnation_id=self.incarnation_id,
        )
        if not isinstance(decision, ExecuteEffect):
            self.replayed += 1
            if decision.status == "failed":
                raise RecordedFailure(decision.error or {})
            return decision.outcome or {}
        key = (effect.scope_id, effect.replay_key)
        with self._lock:
            self.executed += 1
        if control is not None:
            control.track(InflightEffect(*key, decision.lease_token))
        try:
            try:
                outcome = execute()
            except LashError as exc:
                if exc.retryable:
                    # A transient failure (database, blob store, an overloaded LLM provider)
                    # is not the effect's outcome: free the row so a retried step runs it.
                    self.journal.release(*key, decision.lease_token)
                    raise
                self.journal.finalize(*key, decision.lease_token, error=exc.to_dict())
                raise
            except Exception:
                # A bug is not the effect's outcome either; the row is freed for the next
                # attempt rather than left to block it until the effect lease runs out.
                self.journal.release(*key, decision.lease_token)
                raise
            self.journal.finalize(*key, decision.lease_token, outcome=outcome)
            return outcome
        finally:
            if control is not None:
                control.untrack(*key)

    def renew(self, control: StepControl) -> None:
        """Keep the effect leases of one step alive during its long calls (called by that
        step's lease keeper, and no other: a hung step must not outlive its time limit)."""
        for effect in control.inflight():
            try:
                self.journal.renew(
                    effect.scope_id, effect.replay_key, effect.lease_token, self.ttl_ms
                )
            except LashError as exc:
                # One lost effect lease must not stop the renewal of every other one.
                log.warning("effect lease for %s not renewed: %s", effect.replay_key, exc.code)
