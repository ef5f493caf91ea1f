"""Renews the session lease in the background while a step runs.

A failed renewal marks the lease lost; the step checks before committing and
discards its work, since its fence can no longer commit anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from lash_tasks.errors import LashError, LeaseLost
from lash_tasks.runtime.effects import EffectHost
from lash_tasks.store.records import Lease
from lash_tasks.store.sql_store import SqlStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        store: SqlStore,
        lease: Lease,
        ttl_ms: int,
        renew_ms: int,
        effects: EffectHost | None = None,
        max_hold_ms: int | None = None,
    ) -> None:
        """`max_hold_ms` bounds a step: past it the keeper stops renewing, so a hung tool or
        LLM call (which no thread pool can kill) cannot hold the session for ever."""
        if ttl_ms < 3 * renew_ms:
            raise ValueError("lease ttl must be at least three renew intervals")
        self.store = store
        self.lease = lease
        self.ttl_ms = ttl_ms
        self.renew_ms = renew_ms
        self.effects = effects
        self.max_hold_ms = max_hold_ms
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
        while not self._stop.wait(self.renew_ms / 1000):
            held_ms = (time.monotonic() - started) * 1000
            if self.max_hold_ms is not None and held_ms > self.max_hold_ms:
                log.error(
                    "step on session %s exceeded its %d ms limit; letting its lease expire",
                    self.lease.session_id,
                    self.max_hold_ms,
                )
                self.lost.set()
                return
            try:
                self.store.renew_lease(self.lease.fence, self.ttl_ms)
                if self.effects is not None:
                    self.effects.renew_inflight()
            except LeaseLost:
                log.warning("lease on session %s lost during a step", self.lease.session_id)
                self.lost.set()
                return
            except LashError as exc:
                log.warning("lease renewal failed for %s: %s", self.lease.session_id, exc.code)
            except Exception as exc:  # a dying keeper would let the lease lapse unnoticed
                log.warning("lease renewal error for %s: %s", self.lease.session_id, exc)
