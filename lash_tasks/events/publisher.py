"""Publishing events to a bounded Redis Stream per session, never at a turn's expense.

`publish` only hands the event to an in-process queue; one background thread per process
sends what has queued up in batches, each one pipeline: XADD with an approximate MAXLEN,
then XTRIM MINID (entries older than `max_age_s`) and an EXPIRE, so that the stream of an
idle session vanishes by itself. Why a queue and not a plain XADD: on loopback an XADD is a
round trip of ~0.1 ms, but a Redis that is slow, paused or unreachable makes every
synchronous call wait for the socket timeout, once per text delta, inside the turn. The
queue costs the step a few microseconds whatever Redis does (figures in docs/http.md).

Failures are swallowed: events are best effort, the database is the truth. When a batch is
lost the sessions it touched get a `gap` marker before their next event, so a reader is
told instead of silently missing events. The warning is logged at most once per interval.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lash_tasks.events.vocabulary import Gap, SessionEvent, event_record

log = logging.getLogger(__name__)

STREAM_FIELD = "event"
_STOP = object()
# Sessions remembered as owing their readers a `gap` marker; beyond this, forget the rest
# rather than grow without bound while Redis is away.
_MAX_LOST_SESSIONS = 10_000


def stream_key(session_id: str) -> str:
    return f"lash:events:{session_id}"


class EventPublisher(Protocol):
    def publish(self, event: SessionEvent) -> None:
        """Send `event` on its way. Never raises and never blocks."""

    def flush(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for everything published so far to be sent."""

    def close(self) -> None: ...


class NullEventPublisher:
    """For deployments without Redis: live events go nowhere (committed ones reach the
    database through the commit)."""

    def publish(self, event: SessionEvent) -> None:
        return None

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        return None


class RedisEventPublisher:
    def __init__(
        self,
        url: str,
        *,
        maxlen: int = 4096,
        max_age_s: int = 900,
        socket_timeout_s: float = 0.25,
        queue_limit: int = 10_000,
        batch_limit: int = 256,
        retry_after_s: float = 1.0,
        log_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.maxlen = maxlen
        self.max_age_s = max_age_s
        self.socket_timeout_s = socket_timeout_s
        self.queue_limit = queue_limit
        self.batch_limit = batch_limit
        self.retry_after_s = retry_after_s
        self.log_interval_s = log_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = -1
        self._reset()

    def _reset(self) -> None:
        # Also the after-fork path: a child must not use its parent's thread, queue or socket.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._submitted = 0
        self._sent = 0
        self._thread: threading.Thread | None = None
        self._redis: redis.Redis[bytes] | None = None
        self._retry_at = 0.0
        self._lost: set[str] = set()
        self._dropped = 0
        self._warned_at = -1e18
        self._failing = False
        # Batches this process tried to send to Redis (one round trip each); while Redis is
        # unreachable, at most one per `retry_after_s`.
        self.send_attempts = 0

    def publish(self, event: SessionEvent) -> None:
        try:
            self._ensure_started()
            with self._done:
                if self._submitted - self._sent >= self.queue_limit:
                    self._drop([event], "the event queue is full")
                    return
                self._submitted += 1
            self._queue.put_nowait(event)
        except Exception as exc:  # never let an event fail the turn that emitted it
            self._warn(f"could not queue an event: {type(exc).__name__}")

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._done:
            target = self._submitted
            while self._sent < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._done.wait(left):
                    return self._sent >= target
        return True

    def close(self, timeout: float = 1.0) -> None:
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            self._queue.put_nowait(_STOP)
            thread.join(timeout)
        if self._redis is not None:
            self._redis.close()
        self._reset()

    def _ensure_started(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._reset()
            self._pid = os.getpid()
            self._redis = redis.Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout_s,
                socket_connect_timeout=self.socket_timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._thread = threading.Thread(target=self._run, name="lash-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            stop = batch[0] is _STOP
            while not stop and len(batch) < self.batch_limit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stop = item is _STOP
                batch.append(item)
            events = [e for e in batch if e is not _STOP]
            try:
                if events:
                    self._send(events)
            except Exception as exc:  # the thread must outlive any one bad batch
                self._drop(events, f"{type(exc).__name__}: {exc}")
            with self._done:
                self._sent += len(events)
                self._done.notify_all()
            if stop:
                return

    def _send(self, events: list[SessionEvent]) -> None:
        now = self._clock()
        if now < self._retry_at:
            self._drop(events, "Redis was unreachable moments ago")
            return
        assert self._redis is not None
        sessions = list(dict.fromkeys(e.session_id for e in events))
        pipe = self._redis.pipeline(transaction=False)
        for session_id in sessions:
            if session_id in self._lost:
                marker = Gap(session_id=session_id, reason="dropped", at_ms=int(now * 1000))
                self._add(pipe, marker)
        for event in events:
            self._add(pipe, event)
        cutoff = f"{int((now - self.max_age_s) * 1000)}-0"
        for session_id in sessions:
            pipe.xtrim(stream_key(session_id), minid=cutoff, approximate=True)
            pipe.expire(stream_key(session_id), self.max_age_s)
        self.send_attempts += 1
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self._retry_at = now + self.retry_after_s
            self._drop(events, f"{type(exc).__name__}: {exc}")
            return
        self._lost.difference_update(sessions)
        if self._failing:
            self._failing = False
            log.warning("events reach Redis again")

    def _add(self, pipe: Any, event: SessionEvent) -> None:
        data = json.dumps(event_record(event), separators=(",", ":"))
        pipe.xadd(
            stream_key(event.session_id),
            {STREAM_FIELD: data},
            maxlen=self.maxlen,
            approximate=True,
        )

    def _drop(self, events: list[SessionEvent], why: str) -> None:
        self._failing = True
        self._dropped += len(events)
        for event in events:
            if len(self._lost) < _MAX_LOST_SESSIONS:
                self._lost.add(event.session_id)
        self._warn(f"live events not published: {why}")

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at < self.log_interval_s:
            return
        self._warned_at = now
        log.warning("%s (%d events dropped since the last report)", message, self._dropped)
        self._dropped = 0
