"""Fixtures for event tests: the shared Redis (the run's own database), a private one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lash_tasks.events.publisher import RedisEventPublisher, stream_key
from lash_tasks.events.redis_source import RedisEventSource
from tests.events.private_redis import PrivateRedis, private_redis
from tests.fleet.conftest import REDIS_DB, exclusive_redis_db
from tests.services import REDIS_HOST, REDIS_PORT, require_redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The shared Redis, in this run's own database (held so no fleet test flushes it)."""
    require_redis()
    with exclusive_redis_db(REDIS_DB):
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture
def session_id(redis_url: str) -> Iterator[str]:
    """A fresh session id whose stream is deleted afterwards."""
    sid = f"ev-{uuid.uuid4().hex[:12]}"
    yield sid
    client = redis.Redis.from_url(redis_url)
    client.delete(stream_key(sid))
    client.close()


def fake_view(session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "head_revision": 42}


@pytest.fixture
def publisher(redis_url: str) -> Iterator[RedisEventPublisher]:
    pub = RedisEventPublisher(redis_url)
    yield pub
    pub.close()


@pytest.fixture
def source(redis_url: str) -> Iterator[RedisEventSource]:
    src = RedisEventSource(redis_url, fake_view, block_s=0.2)
    yield src
    src.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, to stop, restart or pause."""
    with private_redis(tmp_path) as server:
        yield server
