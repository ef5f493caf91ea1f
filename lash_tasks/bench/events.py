"""Live-event latency: from an LLM provider's text delta to a `watch` reader seeing it.

Two measures:
- `delta_latency_fleet` (the `events` case of `lash-tasks bench`), end to end: a worker
  process streams each answer from a local OpenAI-compatible server
  (`bench/streaming_llm.py`); the time runs from the server writing a token to a reader in
  this process holding it — as `lash-tasks watch` and the gateway read. The server and the
  reader share this process's monotonic clock.
- `measure_delta_latency`, the event path alone: `StepEvents.text_delta` (what the
  provider's `on_text_delta` callback calls) → the publisher's queue → its background thread
  → XADD → a reader blocked in XREAD.
Deltas are spaced out like tokens, so each is measured on its own, not as part of a batch.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

import redis

from lash_tasks.bench.fleet import BenchFleet
from lash_tasks.bench.streaming_llm import StreamingLlmServer
from lash_tasks.client import Client
from lash_tasks.events.emitter import StepEvents
from lash_tasks.events.publisher import RedisEventPublisher, stream_key
from lash_tasks.events.redis_source import RedisEventSource
from lash_tasks.events.vocabulary import TURN_ENDS, TextDelta
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store

# The delta-latency target on loopback (issue 11): provider token → live reader.
TARGET_MS = 20.0


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


def delta_latency_fleet(
    fleet: BenchFleet, turns: int = 20, spacing_s: float = 0.01
) -> dict[str, Any]:
    """Milliseconds from the LLM server writing a token to a live reader holding it, through
    a real worker: HTTP stream → provider callback → publisher → Redis → XREAD."""
    if fleet.embedded:
        return {"skipped": "live events need Redis (run without --embedded)"}
    with StreamingLlmServer(delta_delay_s=spacing_s) as server:
        env = {
            "LASH_PROVIDER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "LASH_MODEL": "local-stream",
        }
        fleet.start_workers(1, 4, **env)
        client = Client(
            Store.from_url(fleet.database_url),
            Settings.from_env(fleet.env(**env)),
            fleet.celery_app(),
        )
        first: list[float] = []
        every: list[float] = []
        try:
            client.create_session("bench-delta")
            for turn in range(turns):
                calls_before = len(server.calls)
                seen = _one_turn(client, "bench-delta", f"stream {turn} a b c d e f g h")
                (call,) = server.calls[calls_before:]
                latencies = [(s - w) * 1000 for s, w in zip(seen, call.sent_at, strict=False)]
                if latencies:
                    first.append(latencies[0])
                    every.extend(latencies)
        finally:
            client.close()
            fleet.stop_workers()
    first.sort()
    every.sort()
    if not first:
        return {"turns": 0}
    return {
        "turns": len(first),
        "deltas": len(every),
        "first_token_p50_ms": statistics.median(first),
        "first_token_p95_ms": first[int(0.95 * (len(first) - 1))],
        "delta_p50_ms": statistics.median(every),
        "delta_p95_ms": every[int(0.95 * (len(every) - 1))],
        "target_ms": TARGET_MS,
    }


def _one_turn(client: Client, session_id: str, text: str) -> list[float]:
    """Run one turn while following the session live; when each delta was seen, in order."""
    source = client.event_source
    cursor = source.tail(session_id)
    client.enqueue_turn(session_id, text)
    seen: list[float] = []
    for event in source.follow(session_id, cursor, timeout=60, idle_s=0.5):
        if isinstance(event, TextDelta):
            seen.append(time.perf_counter())
        elif event is not None and event.type in TURN_ENDS:
            break
    return seen
