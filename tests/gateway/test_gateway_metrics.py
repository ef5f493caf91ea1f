"""GET /metrics on the gateway: the fleet's backlog from the database, behind the token."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import Gateway

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in:\n{text}")


def test_metrics_need_the_token_and_show_the_backlog(gateway: Gateway) -> None:
    """401 without the token; with it, Prometheus text whose pending-input count and session
    count follow what was written."""
    assert httpx.get(f"{gateway.url}/metrics", timeout=10).status_code == 401
    with gateway.client() as http:
        before = http.get("/metrics")
        assert before.status_code == 200
        assert before.headers["content-type"].startswith("text/plain")
        assert _sample(before.text, "lash_pending_inputs") == 0
        assert http.post("/sessions", json={"session_id": "m1"}).status_code == 201
        # No worker runs here: the input waits, and the backlog shows it.
        assert http.post("/sessions/m1/inputs", json={"text": "hi"}).status_code == 202
        after = http.get("/metrics").text
    assert _sample(after, "lash_pending_inputs") == 1
    assert _sample(after, "lash_sessions") == 1
    assert _sample(after, "lash_oldest_pending_input_age_seconds") >= 0
    assert "# TYPE lash_active_turns gauge" in after
