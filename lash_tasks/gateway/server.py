"""`lash-tasks serve`: run the gateway with uvicorn."""

from __future__ import annotations

import logging

from lash_tasks.errors import MissingDependency
from lash_tasks.gateway.auth import TOKEN_VARIABLE, gateway_token
from lash_tasks.log_format import use_json_logs
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store

log = logging.getLogger(__name__)


def serve(
    settings: Settings, *, host: str, port: int, log_level: str = "info", threads: int = 128
) -> None:
    token = gateway_token(settings.env, host)  # refuse before importing or binding anything
    try:
        import uvicorn

        from lash_tasks.gateway.app import create_app
    except ImportError as exc:
        raise MissingDependency(
            f"the gateway needs its extra: pip install 'lash-tasks[server]' ({exc.name} missing)"
        ) from None
    from lash_tasks.client import Client

    client = Client(Store.from_url(settings.database_url), settings)
    app = create_app(client, token, threads=threads)
    logging.basicConfig(level=log_level.upper())
    if settings.log_format == "json":
        use_json_logs(logging.getLogger())
    log.info(
        "gateway on http://%s:%d, %s",
        host,
        port,
        "bearer token required" if token else f"no auth (loopback only, {TOKEN_VARIABLE} unset)",
    )
    # A short graceful shutdown: open event streams would otherwise hold it up for ever.
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
