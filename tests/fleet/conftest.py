"""Fleet fixtures: a fresh PostgreSQL database and a private Redis database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lash_tasks.store.migrate import upgrade
from tests.fleet.harness import Fleet
from tests.services import REDIS_HOST, REDIS_PORT, require_redis, scratch_postgres_database

# A Redis database of our own: FLUSHDB there never touches what other programs keep.
REDIS_DB = int(os.environ.get("LASH_TEST_REDIS_DB", "13"))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    require_redis()
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
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
