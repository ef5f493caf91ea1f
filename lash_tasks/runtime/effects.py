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

from lash_tasks.errors import LashError
from lash_tasks.machine import stable_hash
from lash_tasks.store.journal import ExecuteEffect
from lash_tasks.store.sql_store import SqlStore

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


class RecordedFailure(LashError):
    """A journaled effect failed before; replaying it yields the same failure."""

    code = "recorded_failure"

    def __init__(self, error: dict[str, Any]) -> None:
        # `message` is the positional argument; the rest of the record travels as details.
        details = {k: v for k, v in error.items() if k != "message"}
        super().__init__(str(error.get("message", "effect failed")), **details)
        self.error = error
        self.retryable = bool(error.get("retryable", False))


class EffectHost(Protocol):
    durability_tier: str

    def run(self, effect: EffectRequest, execute: Callable[[], Outcome]) -> Outcome: ...

    def renew_inflight(self) -> None: ...


class InlineEffectHost:
    """No journal: every call executes. Not crash-safe; for embedded use and tests."""

    durability_tier = "inline"

    def __init__(self) -> None:
        self.executed = 0

    def run(self, effect: EffectRequest, execute: Callable[[], Outcome]) -> Outcome:
        self.executed += 1
        return execute()

    def renew_inflight(self) -> None:
        return None


class DurableEffectHost:
    """Journals outcomes in the store's effect journal under an effect lease."""

    durability_tier = "durable"

    def __init__(
        self,
        store: SqlStore,
        owner: str,
        ttl_ms: int = 30_000,
        incarnation_id: str | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.incarnation_id = incarnation_id
        self.ttl_ms = ttl_ms
        self.executed = 0
        self.replayed = 0
        self._inflight: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def run(self, effect: EffectRequest, execute: Callable[[], Outcome]) -> Outcome:
        decision = self.store.journal_prepare(
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
            self._inflight[key] = decision.lease_token
            self.executed += 1
        try:
            try:
                outcome = execute()
            except LashError as exc:
                if exc.retryable:
                    # A transient failure (database, blob store, an overloaded LLM provider)
                    # is not the effect's outcome: free the row so a retried step runs it.
                    self.store.journal_release(*key, decision.lease_token)
                    raise
                self.store.journal_finalize(*key, decision.lease_token, error=exc.to_dict())
                raise
            self.store.journal_finalize(*key, decision.lease_token, outcome=outcome)
            return outcome
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def renew_inflight(self) -> None:
        """Keep effect leases alive during long calls (called by the session lease keeper)."""
        with self._lock:
            inflight = list(self._inflight.items())
        for (scope_id, replay_key), token in inflight:
            try:
                self.store.journal_renew(scope_id, replay_key, token, self.ttl_ms)
            except LashError as exc:
                # One lost effect lease must not stop the renewal of every other one.
                log.warning("effect lease for %s not renewed: %s", replay_key, exc.code)
