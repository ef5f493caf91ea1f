"""Fleet fixtures: a fresh PostgreSQL database and a private Redis database per test."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from lash_tasks.store.migrate import upgrade
from tests.fleet.harness import Fleet
from tests.fleet.private_redis import PrivateRedis
from tests.services import REDIS_HOST, REDIS_PORT, require_redis, scratch_postgres_database

# A Redis database of our own: FLUSHDB there never touches what other programs keep.
REDIS_DB = int(os.environ.get("LASH_TEST_REDIS_DB", "13"))
# How long a fleet test waits for another fleet run on this machine to let go of REDIS_DB.
REDIS_DB_WAIT_S = float(os.environ.get("LASH_TEST_REDIS_DB_WAIT_S", "300"))


@contextmanager
def exclusive_redis_db(db: int) -> Iterator[None]:
    """Hold this machine's lock on Redis database `db` for one fleet test.

    Two fleet runs sharing one Redis database consume each other's pokes and flush each
    other's queues, so concurrent runs (another checkout, another engineer) take turns.
    """
    path = Path(tempfile.gettempdir()) / f"lash-fleet-redis-{REDIS_HOST}-{REDIS_PORT}-{db}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + REDIS_DB_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"Redis database {db} stayed in use by another fleet run for "
                        f"{REDIS_DB_WAIT_S:.0f} s (set LASH_TEST_REDIS_DB to use another one)",
                        pytrace=False,
                    )
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    require_redis()
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    with exclusive_redis_db(REDIS_DB):
        redis.Redis.from_url(redis_url).flushdb()
        with scratch_postgres_database("lash_fleet") as database_url:
            upgrade(database_url)
            home = tmp_path / "lash-home"
            home.mkdir()
            fleet = Fleet(database_url, redis_url, home)
            try:
                yield fleet
            finally:
                fleet.stop_all()
                redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own: the one a test may restart or flush whole."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_fleet(tmp_path: Path, redis_server: PrivateRedis) -> Iterator[Fleet]:
    """A fleet whose broker is `redis_server`, with a fresh PostgreSQL database."""
    with scratch_postgres_database("lash_fleet") as database_url:
        upgrade(database_url)
        home = tmp_path / "lash-home"
        home.mkdir()
        fleet = Fleet(database_url, redis_server.url, home)
        try:
            yield fleet
        finally:
            fleet.stop_all()
