"""`lash-tasks serve` in a subprocess on a free loopback port, over PostgreSQL and Redis."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lash_tasks.store.migrate import upgrade
from lash_tasks.store.store import Store
from tests.events.private_redis import free_port
from tests.fleet.conftest import REDIS_DB, exclusive_redis_db
from tests.services import REDIS_HOST, REDIS_PORT, require_redis, scratch_postgres_database


@dataclass
class Gateway:
    url: str
    token: str
    database_url: str
    redis_url: str
    home: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lash_tasks.cli", "serve", *args]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    env["LASH_HOME"] = str(home)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_redis()
    home = tmp_path_factory.mktemp("gateway")
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    with exclusive_redis_db(REDIS_DB), scratch_postgres_database("lash_gw") as database_url:
        upgrade(database_url)
        port = free_port()
        token = secrets.token_urlsafe(24)
        env = clean_env(
            home,
            LASH_DATABASE_URL=database_url,
            LASH_REDIS_URL=redis_url,
            LASH_HTTP_TOKEN=token,
        )
        log = (home / "gateway.log").open("wb")
        server = subprocess.Popen(
            serve_command("--port", str(port)), env=env, cwd=str(home), stdout=log, stderr=log
        )
        try:
            _wait_until_up(f"http://127.0.0.1:{port}", server)
            yield Gateway(f"http://127.0.0.1:{port}", token, database_url, redis_url, home)
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()


def _wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90  # imports are slow on a busy machine
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"lash-tasks serve exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("lash-tasks serve did not come up in 90 s")


@pytest.fixture
def store(gateway: Gateway) -> Iterator[Store]:
    """The gateway's own database, to check what it wrote (shadows the dialect fixture)."""
    opened = Store.from_url(gateway.database_url)
    yield opened
    opened.close()
