"""The fleet's backlog as Prometheus gauges, read from the database at each scrape.

Served once (by the gateway), not by every worker: it is the same number everywhere, and
only the database knows it — what waits in the broker may have been lost, what waits in the
database never is.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lash_tasks.store.backlog import Backlog


class BacklogCollector(Collector):
    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        snapshot = self.backlog.snapshot()
        yield GaugeMetricFamily(
            "lash_pending_inputs", "User inputs waiting for a turn", value=snapshot.pending_inputs
        )
        yield GaugeMetricFamily(
            "lash_oldest_pending_input_age_seconds",
            "How long the oldest waiting input has waited (0 when none waits)",
            value=snapshot.oldest_pending_input_age_s,
        )
        yield GaugeMetricFamily(
            "lash_ready_queued_work", "Queued work ready to run", value=snapshot.ready_queued_work
        )
        yield GaugeMetricFamily(
            "lash_active_turns", "Turns in progress (between steps or running one)",
            value=snapshot.active_turns,
        )  # fmt: skip
        yield GaugeMetricFamily("lash_sessions", "Sessions stored", value=snapshot.sessions)
