"""The benchmark's delta-latency helper, run briefly against the real Redis."""

from __future__ import annotations

import pytest

from lash_tasks.bench.events import measure_delta_latency

pytestmark = pytest.mark.redis


def test_a_streamed_delta_reaches_a_live_reader_within_the_target(redis_url: str) -> None:
    """Every delta published through StepEvents reaches a live reader; the median latency
    from the provider callback to the reader is under the 20 ms loopback target."""
    figures = measure_delta_latency(redis_url, samples=60, spacing_s=0.002)
    assert figures["samples"] == 60 and figures["lost"] == 0
    assert figures["p50_ms"] < 20, figures
