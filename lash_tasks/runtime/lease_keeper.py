"""Watches over a running step: renews its leases and notices interrupts.

Every renew interval it renews the session lease and the leases of the step's own in-flight
effects. A failed renewal marks the lease lost; the step checks before committing and
discards its work, since its fence can no longer commit anyway. Every poll interval, while
the step advances a turn, it reads the turn's cancel flag (one primary-key read), so that an
interrupt cuts a running LLM call within about a second rather than at the step's end.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from lash_tasks.errors import Interrupted, LashError, LeaseLost
from lash_tasks.runtime.effects import EffectHost
from lash_tasks.runtime.step_control import StepControl
from lash_tasks.store.contracts import LeaseStore, TurnStore
from lash_tasks.store.records import Lease

log = logging.getLogger(__name__)
DEFAULT_POLL_MS = 500


class LeaseKeeper:
    def __init__(
        self,
        leases: LeaseStore,
        turns: TurnStore,
        lease: Lease,
        ttl_ms: int,
        renew_ms: int,
        effects: EffectHost | None = None,
        max_hold_ms: int | None = None,
        control: StepControl | None = None,
        poll_ms: int = DEFAULT_POLL_MS,
    ) -> None:
        """`max_hold_ms` bounds a step: past it the keeper stops renewing, so a hung tool or
        LLM call (which no thread pool can kill) cannot hold the session for ever."""
        if ttl_ms < 3 * renew_ms:
            raise ValueError("lease ttl must be at least three renew intervals")
        self.leases = leases
        self.turns = turns
        self.lease = lease
        self.ttl_ms = ttl_ms
        self.renew_ms = renew_ms
        self.effects = effects
        self.max_hold_ms = max_hold_ms
        self.control = control if control is not None else StepControl()
        self.poll_ms = max(1, min(poll_ms, renew_ms))
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-keeper-{lease.session_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        """Raise `LeaseLost` if a renewal failed: the step must not commit."""
        if self.lost.is_set():
            raise LeaseLost(f"lease on session {self.lease.session_id!r} was lost mid-step")

    def _run(self) -> None:
        started = time.monotonic()
        next_renewal = started + self.renew_ms / 1000
        while not self._stop.wait(self.poll_ms / 1000):
            now = time.monotonic()
            if self.max_hold_ms is not None and (now - started) * 1000 > self.max_hold_ms:
                self._give_up()
                return
            if now >= next_renewal:
                next_renewal = now + self.renew_ms / 1000
                if not self._renew():
                    return
            self._poll_cancel()

    def _renew(self) -> bool:
        """Renew the session lease and the step's effect leases; False once it is lost."""
        try:
            self.leases.renew(self.lease.fence, self.ttl_ms)
            if self.effects is not None:
                self.effects.renew(self.control)
        except LeaseLost:
            log.warning("lease on session %s lost during a step", self.lease.session_id)
            self._lose(LeaseLost(f"lease on session {self.lease.session_id!r} was lost"))
            return False
        except LashError as exc:
            log.warning("lease renewal failed for %s: %s", self.lease.session_id, exc.code)
        except Exception as exc:  # a dying keeper would let the lease lapse unnoticed
            log.warning("lease renewal error for %s: %s", self.lease.session_id, exc)
        return True

    def _poll_cancel(self) -> None:
        control = self.control
        if control.turn_id is None or control.interrupt.fired:
            return
        try:
            requested = self.turns.cancel_requested(self.lease.session_id, control.turn_id)
        except Exception as exc:  # the next poll asks again; renewals must go on
            log.warning("cancel poll failed for %s: %s", self.lease.session_id, exc)
            return
        if requested:
            log.info("turn %s of %s interrupted", control.turn_id, self.lease.session_id)
            control.interrupt.fire(
                Interrupted(
                    f"turn {control.turn_id!r} was interrupted on request",
                    session_id=self.lease.session_id,
                    turn_id=control.turn_id,
                )
            )

    def _give_up(self) -> None:
        limit_s = (self.max_hold_ms or 0) / 1000
        log.error(
            "step on session %s exceeded its %.0f s limit; letting its lease expire",
            self.lease.session_id,
            limit_s,
        )
        self.control.timed_out = True
        if self.control.turn_id is not None:
            error = {
                "code": "step_time_limit",
                "message": f"the step ran past its time limit of {limit_s:.0f} s",
            }
            try:
                self.turns.record_step_failure(self.lease.fence, self.control.turn_id, error)
            except Exception as exc:
                log.warning("could not record the hung step on %s: %s", self.lease.session_id, exc)
        self._lose(LeaseLost(f"step on session {self.lease.session_id!r} ran past its time limit"))

    def _lose(self, error: LeaseLost) -> None:
        self.lost.set()
        # An LLM call still running can no longer be committed: cut it.
        self.control.interrupt.fire(error)
