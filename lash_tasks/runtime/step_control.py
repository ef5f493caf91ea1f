"""What one running step shares with the lease keeper that watches over it.

The keeper renews the leases of this step's in-flight effects, and only these: a hung call
of one session must not be kept alive by another session's step in the same worker, or its
next owner would wait on `effect_busy` for ever. The keeper fires the step's interrupt when
the turn is cancelled or the step's lease is lost.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lash_tasks.errors import Interrupted, LeaseLost
from lash_tasks.providers.interrupt import Interrupt


@dataclass(frozen=True)
class InflightEffect:
    scope_id: str
    replay_key: str
    lease_token: str


class StepControl:
    def __init__(self) -> None:
        self.interrupt = Interrupt()
        self.turn_id: str | None = None
        self.step_index: int | None = None
        # Set by the keeper when the step ran past its time limit: that loss of the lease is
        # the step's own failure, not a sign that another worker took over.
        self.timed_out = False
        self._inflight: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def begin_turn_step(self, turn_id: str, step_index: int) -> None:
        self.turn_id = turn_id
        self.step_index = step_index

    @property
    def cancelled(self) -> bool:
        """The turn was interrupted on request (not merely its lease lost)."""
        return isinstance(self.interrupt.error, Interrupted)

    @property
    def lease_lost(self) -> bool:
        """The keeper gave the step's lease up (or saw it taken): it can commit nothing."""
        return isinstance(self.interrupt.error, LeaseLost)

    def track(self, effect: InflightEffect) -> None:
        with self._lock:
            self._inflight[(effect.scope_id, effect.replay_key)] = effect.lease_token

    def untrack(self, scope_id: str, replay_key: str) -> None:
        with self._lock:
            self._inflight.pop((scope_id, replay_key), None)

    def inflight(self) -> list[InflightEffect]:
        with self._lock:
            return [InflightEffect(s, k, token) for (s, k), token in self._inflight.items()]
