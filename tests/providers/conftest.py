"""Fixtures for provider tests: a loopback HTTP server and a proxy-free client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ._server import LocalServer


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy configured in the environment must not see loopback traffic.
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(5.0)) as client:
        yield client


@pytest.fixture
def sleeps() -> list[float]:
    return []
