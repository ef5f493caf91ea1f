"""Fixtures shared by every test: the store on each dialect, and a guard against real networks."""

from __future__ import annotations

import ipaddress
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from lash_tasks.store.migrate import upgrade
from lash_tasks.store.schema import metadata
from lash_tasks.store.store import Store
from tests.services import scratch_postgres_database

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0]
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise ConnectionRefusedError(f"tests may only reach loopback addresses, not {host!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real LLM service or any other non-loopback address."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_postgres_database() as url:
        upgrade(url)
        yield url


def _truncate_all(store: Store) -> None:
    names = ", ".join(f'"{table.name}"' for table in reversed(metadata.sorted_tables))
    with store.database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each dialect (PostgreSQL: one database, truncated per test)."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        opened = Store.from_url(f"sqlite:///{path}")
    else:
        opened = Store.from_url(request.getfixturevalue("postgres_url"))
        _truncate_all(opened)
    try:
        yield opened
    finally:
        opened.close()
