"""Find the local PostgreSQL and Redis; skip without them, fail under LASH_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "LASH_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST = os.environ.get("LASH_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("LASH_TEST_REDIS_PORT", "6379"))


def services_required() -> bool:
    return os.environ.get("LASH_REQUIRE_SERVICES") == "1"


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: a missing service must never turn into a silent green run."""
    message = f"{what} is not reachable"
    if services_required():
        pytest.fail(message + " and LASH_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message + " (set LASH_REQUIRE_SERVICES=1 to make this a failure)")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if not _port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL at 127.0.0.1:5432")


def require_redis() -> None:
    if not _port_open(REDIS_HOST, REDIS_PORT):
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}")


@contextmanager
def scratch_postgres_database(prefix: str = "lash_t") -> Iterator[str]:
    """A brand-new empty database, dropped afterwards. Yields its URL."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
