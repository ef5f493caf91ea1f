"""A worker's own metrics endpoint: `GET /metrics` on LASH_METRICS_PORT, behind the same
bearer token as the gateway (LASH_HTTP_TOKEN, required off loopback).

One endpoint per worker process, scraped like any fleet of processes: the counters live in
the process that counted them, and nothing has to gather them first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer

from lash_tasks.http_token import authorized, required_token

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]


def metrics_app(registry: CollectorRegistry, token: str | None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: /metrics for a caller with the token, 401 without, 404 elsewhere."""
    secret = None if token is None else token.encode()

    def app(environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION"), secret):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"missing or wrong bearer token\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(registry)]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # a scrape every few seconds would drown the worker's log


class MetricsExporter:
    """Serves one registry on a daemon thread until `stop`."""

    def __init__(
        self, registry: CollectorRegistry, env: Mapping[str, str], host: str, port: int
    ) -> None:
        token = required_token(env, host, "the metrics endpoint")  # refuse before binding
        self._server = make_server(
            host, port, metrics_app(registry, token), ThreadingWSGIServer, _QuietHandler
        )
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lash-metrics", daemon=True
        )

    def start(self) -> MetricsExporter:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._server.server_name, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
