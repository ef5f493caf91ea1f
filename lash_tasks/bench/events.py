"""Live-event latency: from an LLM provider's text delta to a `watch` reader seeing it.

A delta takes the path a streamed token takes in a step: `StepEvents.text_delta` (what the
provider's `on_text_delta` callback calls) → the publisher's queue → its background thread
→ XADD → a reader blocked in XREAD, as `lash-tasks watch` and the gateway read. Both ends
run in this process, so one monotonic clock times them; the deltas are spaced out like
tokens so each is measured on its own, not as part of a batch.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

import redis

from lash_tasks.events.emitter import StepEvents
from lash_tasks.events.publisher import RedisEventPublisher, stream_key
from lash_tasks.events.redis_source import RedisEventSource
from lash_tasks.events.vocabulary import TextDelta


def measure_delta_latency(
    redis_url: str, samples: int = 200, spacing_s: float = 0.005
) -> dict[str, Any]:
    """Milliseconds from `text_delta` being called to a live reader holding the event."""
    session_id = f"bench-delta-{uuid.uuid4().hex[:10]}"
    publisher = RedisEventPublisher(redis_url)
    source = RedisEventSource(redis_url, lambda sid: {"session_id": sid})
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    call_s: list[float] = []
    ticks = source.follow(
        session_id, source.tail(session_id), timeout=samples * spacing_s + 30, idle_s=0.2
    )

    def read() -> None:
        for event in ticks:
            if isinstance(event, TextDelta):
                seen[event.text] = time.perf_counter()
                if len(seen) == samples:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    step = StepEvents(publisher, False, session_id, "bench-turn", 0)
    try:
        for i in range(samples):
            sent[str(i)] = started = time.perf_counter()
            step.text_delta(str(i))
            call_s.append(time.perf_counter() - started)
            time.sleep(spacing_s)
        reader.join(30)
    finally:
        publisher.close()
        source.close()
        client = redis.Redis.from_url(redis_url)
        client.delete(stream_key(session_id))
        client.close()
    latencies = sorted((seen[k] - sent[k]) * 1000 for k in seen)
    if not latencies:
        return {"samples": 0}
    return {
        "samples": len(latencies),
        "lost": samples - len(latencies),
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": latencies[-1],
        "publish_call_us_p50": statistics.median(call_s) * 1e6,
    }
