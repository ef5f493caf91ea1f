"""A real worker serves its own metrics behind the token and, with LASH_LOG_FORMAT=json,
logs JSON lines that carry the session, turn and step."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.events.private_redis import free_port
from tests.fleet.harness import TESTS_ON_PATH, Fleet

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(150)]


def test_worker_metrics_count_a_turn_and_logs_carry_its_ids(fleet: Fleet) -> None:
    """One tool-using turn: the worker's /metrics (token required) counts it finished in two
    steps with one tool call; the tool's log record, written as JSON, names the session, the
    turn and the step it ran in."""
    # Given
    port = free_port()
    rule = {"match": "log", "tool_calls": [{"name": "log_line", "arguments": {"text": "hi"}}]}
    fleet.extra_env.update(TESTS_ON_PATH)
    fleet.extra_env["LASH_SCRIPTED_RULES"] = json.dumps([rule])
    fleet.extra_env["LASH_TOOLS"] = "tests.tools.lash_test_tool_logging:LoggingTools"
    worker = fleet.start_worker(
        "m",
        concurrency=2,
        LASH_METRICS_PORT=str(port),
        LASH_HTTP_TOKEN="fleet-token",
        LASH_LOG_FORMAT="json",
        LASH_STEPS_PER_DELIVERY="1",  # a poke per step: the step task runs twice
    )
    worker.wait_ready()
    client = fleet.client()
    client.create_session("metered")

    # When
    input_id = client.enqueue_turn("metered", "log please")
    answer = client.wait_for_input("metered", input_id, timeout=60)
    assert answer.state == "completed", answer

    # Then: metrics, for the token only
    url = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(url, timeout=5).status_code == 401
    text = httpx.get(url, headers={"Authorization": "Bearer fleet-token"}, timeout=5).text
    assert 'lash_turns_total{reason="",status="finished"} 1.0' in text
    assert 'lash_steps_total{outcome="progressed"} 1.0' in text
    assert 'lash_steps_total{outcome="finished"} 1.0' in text
    assert 'lash_tool_calls_total{tool="log_line"} 1.0' in text
    assert "lash_step_seconds_count 2.0" in text
    assert 'lash_step_deliveries_total{status="finished"}' in text

    # And: JSON log records, some naming the turn's session, turn and step
    records = []
    for line in worker.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    assert records, worker.log()[-2000:]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    [tool_line] = [r for r in records if r["message"] == "tool log line: hi"]
    assert tool_line["level"] == "WARNING"
    assert tool_line["session_id"] == "metered"
    assert tool_line["turn_id"] == answer.turn_id
    assert tool_line["step"] == 0
    client.close()
