"""The threads pool's event-loop wake (celery#6941): registered for threads, not for others."""

from __future__ import annotations

from typing import Any

from celery.concurrency.thread import TaskPool as ThreadTaskPool

from lash_tasks.worker import lifecycle


class RecordingTimer:
    def __init__(self) -> None:
        self.calls: list[tuple[float, Any]] = []

    def call_repeatedly(self, seconds: float, fun: Any) -> None:
        self.calls.append((seconds, fun))


class ConsumerLike:
    """What Celery's `worker_ready` signal hands over: the consumer, its pool and timer."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.timer = RecordingTimer()


def test_a_threads_pool_worker_wakes_its_event_loop_every_few_milliseconds() -> None:
    """Late acks from task threads are only acted on when the loop wakes: a timer bounds it."""
    pool = ThreadTaskPool(limit=2)
    try:
        consumer = ConsumerLike(pool)
        lifecycle._on_worker_ready(consumer)
        [(seconds, fun)] = consumer.timer.calls
        assert 0 < seconds <= 0.01
        assert fun() is None
    finally:
        pool.executor.shutdown()


def test_other_pools_get_no_wake_timer() -> None:
    """prefork and solo pools acknowledge from the loop itself; they need no timer."""
    consumer = ConsumerLike(object())
    lifecycle._on_worker_ready(consumer)
    assert consumer.timer.calls == []
