"""Effect hosts: run an effect (LLM call, tool call) at most once per replay key.

The durable host journals each outcome in the store. A step re-run after a crash gets the
recorded outcome back instead of calling the LLM or the tool again. Inside a turn step the
journal entries are prepared by the step's own transactions (`store.steps`) and outcomes
ride in the step's commit where they can; the host executes, tracks the running effect for
its step's lease keeper, and frees an entry whose effect failed only for now. `run` does the
whole prepare, execute, record cycle on its own, for effects outside a step.
The inline host just executes; it is for embedded use and tests without a journal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lash_tasks.errors import LashError, RecordedFailure
from lash_tasks.machine import stable_hash
from lash_tasks.machine.ids import effect_scope_id
from lash_tasks.runtime.step_control import InflightEffect, StepControl
from lash_tasks.store.contracts import JournalStore
from lash_tasks.store.records import RecordedEffect
from lash_tasks.store.step_records import EffectHolder, EffectOutcome, EffectSlot

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
        return effect_scope_id(self.session_id, self.turn_id)

    def slot(self) -> EffectSlot:
        return EffectSlot(
            self.scope_id,
            self.replay_key,
            self.session_id,
            self.turn_id,
            stable_hash(self.envelope),
        )


@dataclass(frozen=True)
class Executed:
    """An effect that ran: its `outcome`, or the `error` it failed with for good. `record`
    is what the journal must be told (None without a journal)."""

    outcome: Outcome | None
    error: LashError | None
    record: EffectOutcome | None


class EffectHost(Protocol):
    """Runs effects; `control` is the running step's, whose keeper renews their leases."""

    durability_tier: str

    @property
    def holder(self) -> EffectHolder | None:
        """Who takes the effect leases, or None when nothing is journaled."""
        ...

    def run(
        self,
        effect: EffectRequest,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Outcome: ...

    def replay(self, decision: RecordedEffect) -> Outcome: ...

    def execute(
        self,
        effect: EffectRequest,
        lease_token: str | None,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Executed: ...

    def record(self, outcome: EffectOutcome) -> None: ...

    def renew(self, control: StepControl) -> None: ...


class InlineEffectHost:
    """No journal: every call executes. Not crash-safe; for embedded use and tests."""

    durability_tier = "inline"
    holder: EffectHolder | None = None

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

    def replay(self, decision: RecordedEffect) -> Outcome:
        raise TypeError("the inline effect host keeps no journal to replay from")

    def execute(
        self,
        effect: EffectRequest,
        lease_token: str | None,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Executed:
        self.executed += 1
        try:
            return Executed(execute(), None, None)
        except LashError as exc:
            if exc.retryable:
                raise
            return Executed(None, exc, None)

    def record(self, outcome: EffectOutcome) -> None:
        return None

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

    @property
    def holder(self) -> EffectHolder:
        return EffectHolder(self.owner, self.incarnation_id, self.ttl_ms)

    def run(
        self,
        effect: EffectRequest,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Outcome:
        """Prepare, execute and record one effect, each in its own transaction."""
        slot = effect.slot()
        decision = self.journal.prepare(
            scope_id=slot.scope_id,
            replay_key=slot.replay_key,
            session_id=slot.session_id,
            turn_id=slot.turn_id,
            envelope_hash=slot.envelope_hash,
            owner=self.owner,
            ttl_ms=self.ttl_ms,
            incarnation_id=self.incarnation_id,
        )
        if isinstance(decision, RecordedEffect):
            return self.replay(decision)
        done = self.execute(effect, decision.lease_token, execute, control)
        assert done.record is not None
        self.record(done.record)
        if done.error is not None:
            raise done.error
        return done.outcome or {}

    def replay(self, decision: RecordedEffect) -> Outcome:
        """A recorded effect's outcome; a recorded failure raises `RecordedFailure`."""
        with self._lock:
            self.replayed += 1
        if decision.status == "failed":
            raise RecordedFailure(decision.error or {})
        return decision.outcome or {}

    def execute(
        self,
        effect: EffectRequest,
        lease_token: str | None,
        execute: Callable[[], Outcome],
        control: StepControl | None = None,
    ) -> Executed:
        """Run a prepared effect under its effect lease, tracked for the step's keeper.

        A failure that is not the effect's own outcome — transient (a database or blob-store
        fault, an overloaded LLM provider) or a bug — frees the entry so that a retried step
        runs it again, and raises. A failure that is its outcome comes back to be recorded.
        """
        assert lease_token is not None, "a journaled effect runs under its effect lease"
        key = (effect.scope_id, effect.replay_key)
        with self._lock:
            self.executed += 1
        if control is not None:
            control.track(InflightEffect(*key, lease_token))
        try:
            try:
                outcome = execute()
            except LashError as exc:
                if exc.retryable:
                    self.journal.release(*key, lease_token)
                    raise
                return Executed(None, exc, EffectOutcome(*key, lease_token, error=exc.to_dict()))
            except Exception:
                self.journal.release(*key, lease_token)
                raise
            return Executed(outcome, None, EffectOutcome(*key, lease_token, outcome=outcome))
        finally:
            if control is not None:
                control.untrack(*key)

    def record(self, outcome: EffectOutcome) -> None:
        """Record one outcome in a transaction of its own."""
        self.journal.finalize(
            outcome.scope_id,
            outcome.replay_key,
            outcome.lease_token,
            outcome=outcome.outcome,
            error=outcome.error,
        )

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
