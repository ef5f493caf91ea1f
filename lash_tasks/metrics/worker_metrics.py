"""What one worker process did, as Prometheus metrics in a registry of its own.

Counted where it happens: the step task reports each delivery and retry, the heartbeat the
sessions it took from dead workers, and the trace records every step already emits (turn
and step boundaries, LLM calls with their usage, tool calls) feed the rest, so the runtime
carries no metrics code.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from lash_tasks.runtime.trace import NullTraceSink, TraceSink

# A step is an LLM call plus tools: from tens of milliseconds (scripted, cached) to the
# step time limit.
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Starts whose end never came (a discarded step) are forgotten past this many.
MAX_OPEN = 10_000


class WorkerMetrics:
    """The metrics of this process. No global registry: each process (and test) has its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns = Counter(
            "lash_turns", "Turns ended, by outcome status and reason", ["status", "reason"],
            registry=r,
        )  # fmt: skip
        self.steps = Counter(
            "lash_steps",
            "Turn steps run, by outcome: progressed or finished (committed), discarded "
            "(lease lost), conflict (head revision), command",
            ["outcome"],
            registry=r,
        )
        self.deliveries = Counter(
            "lash_step_deliveries", "Step task deliveries, by result status", ["status"],
            registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "lash_step_seconds", "Duration of committed turn steps", buckets=STEP_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.llm_seconds = Histogram(
            "lash_llm_call_seconds", "Duration of LLM calls, by result", ["result"],
            buckets=LLM_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "lash_llm_tokens", "LLM tokens, by kind (input, output)", ["kind"], registry=r
        )
        self.tool_calls = Counter(
            "lash_tool_calls", "Tool calls completed, by tool", ["tool"], registry=r
        )
        self.retries = Counter(
            "lash_step_retries", "Step tasks scheduled for a retry, by error code", ["code"],
            registry=r,
        )  # fmt: skip
        self.takeovers = Counter(
            "lash_lease_takeovers",
            "Sessions whose lease this worker found held by a dead worker and re-poked",
            registry=r,
        )

    def delivered(self, status: str, steps: int) -> None:
        """One step task's delivery ended with `status` after running `steps` steps."""
        self.deliveries.labels(status).inc()
        if status == "lease_lost":
            self.steps.labels("discarded").inc()
        elif status in ("conflict", "command"):
            self.steps.labels(status).inc()

    def retried(self, code: str) -> None:
        self.retries.labels(code).inc()

    def took_over(self, sessions: int) -> None:
        self.takeovers.inc(sessions)


class MetricsTraceSink:
    """A trace sink that counts what the records say, then hands them on to `inner`."""

    def __init__(self, metrics: WorkerMetrics, inner: TraceSink | None = None) -> None:
        self.metrics = metrics
        self.inner: TraceSink = inner or NullTraceSink()
        self._lock = threading.Lock()
        self._steps: dict[tuple[str, Any], float] = {}
        self._llm: dict[tuple[str, Any], float] = {}

    def append(self, record: dict[str, Any]) -> None:
        self._count(record, time.monotonic())
        self.inner.append(record)

    def _count(self, record: dict[str, Any], now: float) -> None:
        kind = record.get("type")
        context = record.get("context") or {}
        key = (str(context.get("session_id")), context.get("turn_id"))
        m = self.metrics
        if kind == "turn_step_started":
            self._start(self._steps, key, now)
        elif kind == "llm_call_started":
            self._start(self._llm, key, now)
        elif kind in ("llm_call_completed", "llm_call_failed"):
            started = self._stop(self._llm, key)
            result = "ok" if kind == "llm_call_completed" else str(record.get("error"))
            if started is not None:
                m.llm_seconds.labels(result).observe(now - started)
            usage = record.get("usage") or {}
            for token_kind in ("input", "output"):
                count = int(usage.get(f"{token_kind}_tokens") or 0)
                if count:
                    m.tokens.labels(token_kind).inc(count)
        elif kind == "tool_call_completed":
            m.tool_calls.labels(str(record.get("tool"))).inc()
        elif kind in ("turn_step_committed", "turn_completed"):
            started = self._stop(self._steps, key)
            if started is not None:
                m.step_seconds.observe(now - started)
            if kind == "turn_step_committed":
                m.steps.labels("progressed").inc()
            else:
                m.steps.labels("finished").inc()
                outcome = record.get("outcome") or {}
                m.turns.labels(
                    str(outcome.get("status", "unknown")), str(outcome.get("reason") or "")
                ).inc()

    def _start(self, open_: dict[tuple[str, Any], float], key: tuple[str, Any], now: float) -> None:
        with self._lock:
            if len(open_) >= MAX_OPEN:
                open_.clear()  # ends that never came: discarded steps, failed calls
            open_[key] = now

    def _stop(self, open_: dict[tuple[str, Any], float], key: tuple[str, Any]) -> float | None:
        with self._lock:
            return open_.pop(key, None)
