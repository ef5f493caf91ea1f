"""A worker's metrics come from the trace records of real turns, and its endpoint keeps the
gateway's auth rule."""

from __future__ import annotations

import httpx
import pytest

from lash_tasks.errors import InvalidEnvironment
from lash_tasks.metrics.exporter import MetricsExporter
from lash_tasks.metrics.worker_metrics import MetricsTraceSink, WorkerMetrics
from lash_tasks.runtime.trace import MemoryTraceSink
from tests.runtime.conftest import Harness

CALC = (
    '[{"match": "calc", '
    '"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]}]'
)


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_turns_steps_latency_tokens_and_tools_are_counted(harness: Harness) -> None:
    """Two real turns (one with a tool call): turns by outcome, steps by outcome, one step
    and one LLM latency per step, tool calls by tool; records still reach the inner sink."""
    metrics = WorkerMetrics()
    inner = MemoryTraceSink()
    core, _ = harness.core(CALC, sink=MetricsTraceSink(metrics, inner))
    sid = harness.session()

    harness.turn(core, sid, "calc please")
    harness.turn(core, sid, "hello")

    assert value(metrics, "lash_turns_total", status="finished", reason="") == 2
    assert value(metrics, "lash_steps_total", outcome="progressed") == 1
    assert value(metrics, "lash_steps_total", outcome="finished") == 2
    assert value(metrics, "lash_step_seconds_count") == 3
    assert value(metrics, "lash_llm_call_seconds_count", result="ok") == 3
    assert value(metrics, "lash_tool_calls_total", tool="calculator") == 1
    assert value(metrics, "lash_llm_tokens_total", kind="input") > 0
    assert {r["type"] for r in inner.records} >= {"turn_step_started", "turn_completed"}


def test_deliveries_retries_and_takeovers() -> None:
    """The task's reports: a lost lease counts as a discarded step; retries by code."""
    metrics = WorkerMetrics()
    metrics.delivered("lease_lost", 1)
    metrics.delivered("busy", 0)
    metrics.retried("provider_error")
    metrics.took_over(3)
    assert value(metrics, "lash_steps_total", outcome="discarded") == 1
    assert value(metrics, "lash_step_deliveries_total", status="busy") == 1
    assert value(metrics, "lash_step_retries_total", code="provider_error") == 1
    assert value(metrics, "lash_lease_takeovers_total") == 3


def test_the_exporter_needs_a_token_off_loopback() -> None:
    """Bound off loopback without LASH_HTTP_TOKEN, the endpoint refuses to start."""
    with pytest.raises(InvalidEnvironment, match="LASH_HTTP_TOKEN"):
        MetricsExporter(WorkerMetrics().registry, {}, "0.0.0.0", 0)


def test_the_exporter_serves_metrics_to_the_token_only() -> None:
    """With a token: 401 without it or with a wrong one, the metrics with it, 404 elsewhere."""
    metrics = WorkerMetrics()
    metrics.took_over(2)
    exporter = MetricsExporter(
        metrics.registry, {"LASH_HTTP_TOKEN": "s3cret"}, "127.0.0.1", 0
    ).start()
    url = f"http://127.0.0.1:{exporter.port}"
    try:
        assert httpx.get(f"{url}/metrics").status_code == 401
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        good = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert good.headers["content-type"].startswith("text/plain")
        assert "lash_lease_takeovers_total 2.0" in good.text
        other = httpx.get(f"{url}/", headers={"Authorization": "Bearer s3cret"})
        assert other.status_code == 404
    finally:
        exporter.stop()
