"""A worker process's liveness heartbeat, and the reaper that acts on others' deaths.

Every worker process registers its incarnation at start and then beats every
`LASH_HEARTBEAT_MS` from a background thread. Each beat also reaps incarnations whose
heartbeat expired (SIGKILL, OOM, a lost machine): their sessions are poked at once, so
another worker resumes them within a few heartbeat intervals instead of waiting for the
lease ttl, the sweeper, or the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from lash_tasks.errors import LashError, WorkerIdentityInUse
from lash_tasks.store.store import Store
from lash_tasks.worker.process_identity import judge, local_evidence

log = logging.getLogger(__name__)

# An incarnation that missed this many beats is dead.
MISSED_BEATS = 3
# Dead rows outlive every lease their incarnation could still hold.
MIN_RETENTION_MS = 3_600_000

Poke = Callable[[Sequence[str]], None]


class Heartbeat:
    def __init__(
        self,
        store: Store,
        owner_id: str,
        incarnation_id: str,
        *,
        interval_ms: int,
        lease_ttl_ms: int,
        poke: Poke,
    ) -> None:
        self.store = store
        self.owner_id = owner_id
        self.incarnation_id = incarnation_id
        self.interval_ms = interval_ms
        self.grace_ms = MISSED_BEATS * interval_ms
        self.retention_ms = max(MIN_RETENTION_MS, lease_ttl_ms)
        self.poke = poke
        self.evidence = local_evidence()
        self._reap_after = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lash-heartbeat-{owner_id}", daemon=True
        )

    def register(self) -> None:
        """Write this incarnation's first heartbeat, taking over from dead predecessors.

        Raises `WorkerIdentityInUse` if a live process runs under the same owner id.
        """
        # A predecessor this process cannot judge (another PID namespace) is dead once its
        # heartbeat expires, or alive if it beats meanwhile: one grace period decides.
        deadline = time.monotonic() + (self.grace_ms + 2 * self.interval_ms) / 1000
        first_seen: dict[str, int] = {}
        while True:
            dead, undecided = [], []
            for peer in self.store.heartbeats.live_incarnations(self.owner_id):
                if peer.incarnation_id == self.incarnation_id:
                    continue
                verdict = judge(peer.liveness, self.evidence) if self.evidence else "unknown"
                pid = (peer.liveness or {}).get("pid")
                if verdict == "alive" and peer.liveness == self.evidence:
                    verdict = "dead"  # this very process, rebuilt: the old incarnation is over
                if verdict == "alive":
                    raise self._in_use(f"a live process (pid {pid})")
                if verdict == "dead":
                    dead.append(peer.incarnation_id)
                    continue
                if peer.heartbeat_at > first_seen.setdefault(
                    peer.incarnation_id, peer.heartbeat_at
                ):
                    raise self._in_use("a live process elsewhere (its heartbeat goes on)")
                undecided.append(peer.incarnation_id)
            if not undecided and self.store.heartbeats.register(
                self.owner_id,
                self.incarnation_id,
                grace_ms=self.grace_ms,
                liveness=self.evidence,
                declare_dead=dead,
            ):
                if dead:
                    # A warning: a crash happened. (At worker start Celery's logging is not
                    # set up yet; warnings still reach stderr.)
                    log.warning(
                        "worker %s: previous incarnation %s is gone; taking over its leases",
                        self.owner_id,
                        ", ".join(dead),
                    )
                break
            if time.monotonic() > deadline:
                raise self._in_use("another process")
            time.sleep(self.interval_ms / 1000)
        self.reap()

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self, *, retire: bool = True) -> None:
        """Stop beating; `retire` declares this incarnation dead at once (clean shutdown)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if retire:
            try:
                self.store.heartbeats.retire(self.incarnation_id)
            except LashError as exc:
                log.warning("could not retire worker incarnation: %s", exc.code)

    def beat(self) -> None:
        if not self.store.heartbeats.beat(
            self.owner_id, self.incarnation_id, grace_ms=self.grace_ms, liveness=self.evidence
        ):
            log.warning(
                "worker %s: heartbeat had stopped for long; leases held meanwhile were taken over",
                self.owner_id,
            )

    def reap(self) -> None:
        orphaned = self.store.heartbeats.reap_dead(retention_ms=self.retention_ms)
        if orphaned:
            log.info("poking %d session(s) held by dead workers", len(orphaned))
            try:
                self.poke(orphaned)
            except Exception as exc:  # the broker is away: the sweeper finds them later
                log.warning("could not poke sessions of dead workers: %s", _describe(exc))

    def _run(self) -> None:
        # Reaping every half beat keeps a death's detection within half a beat of the
        # heartbeat's expiry, for one more small transaction per beat.
        tick = 0
        while not self._stop.wait(self.interval_ms / 2000):
            tick += 1
            try:
                if tick % 2 == 0:
                    self.beat()
                if time.monotonic() >= self._reap_after:
                    self.reap()
            except Exception as exc:  # a dying heartbeat thread would get this process reaped
                log.warning("heartbeat of %s failed: %s", self.owner_id, _describe(exc))
                # While the database was out of reach nobody could beat: give the others
                # a grace period to beat again before taking their silence for death.
                self._reap_after = time.monotonic() + self.grace_ms / 1000

    def _in_use(self, holder: str) -> WorkerIdentityInUse:
        return WorkerIdentityInUse(
            f"worker name {self.owner_id!r} is in use by {holder}; "
            "give each worker its own name with -n",
            owner_id=self.owner_id,
        )


def _describe(exc: Any) -> str:
    return exc.code if isinstance(exc, LashError) else type(exc).__name__
