"""PostgreSQL only: the store pins READ COMMITTED, which its advisory locks rely on.

(SQLite has no snapshot that could go stale: BEGIN IMMEDIATE serialises writers.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lash_tasks.store.migrate import upgrade
from lash_tasks.store.records import Busy
from lash_tasks.store.store import Store
from tests.services import PG_ADMIN_URL, scratch_postgres_database
from tests.store_conformance.support import POLICY


@pytest.fixture
def serializable_by_default() -> Iterator[str]:
    """A migrated scratch database whose own default isolation is SERIALIZABLE."""
    with scratch_postgres_database("lash_iso") as url:
        upgrade(url)
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                name = make_url(url).database
                conn.execute(
                    text(
                        f'ALTER DATABASE "{name}" SET default_transaction_isolation = serializable'
                    )
                )
        finally:
            admin.dispose()
        yield url


def test_store_connections_run_read_committed(serializable_by_default: str) -> None:
    """Whatever the database's default, the store's transactions run READ COMMITTED."""
    raw = create_engine(serializable_by_default)
    store = Store.from_url(serializable_by_default)
    try:
        with raw.connect() as conn:
            assert conn.execute(text("SHOW transaction_isolation")).scalar_one() == "serializable"
        with store.database.tx() as conn:
            assert conn.execute(text("SHOW transaction_isolation")).scalar_one() == "read committed"
    finally:
        store.close()
        raw.dispose()


def test_a_writer_that_waited_on_the_session_lock_sees_what_committed_first(
    serializable_by_default: str,
) -> None:
    """A lease claim queued behind another writer's session lock reads that writer's lease
    once it gets the lock (Busy), instead of a snapshot from before it waited."""
    store = Store.from_url(serializable_by_default)
    other = create_engine(serializable_by_default, isolation_level="READ COMMITTED")
    outcome: list[Any] = []
    try:
        store.sessions.create("s1", POLICY)
        with other.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('session:s1', 0))"))
            claimer = threading.Thread(
                target=lambda: outcome.append(_claim(store)), name="claimer", daemon=True
            )
            claimer.start()
            _wait_for_a_lock_waiter(conn)
            conn.execute(
                text(
                    "INSERT INTO lash_session_leases (session_id, owner_id, incarnation_id,"
                    " lease_token, fencing_token, claimed_at, expires_at) VALUES ('s1', 'other',"
                    " 'inc', 'tok', 1, 0, 9000000000000)"
                )
            )
        claimer.join(timeout=10)
        assert len(outcome) == 1
        assert isinstance(outcome[0], Busy), outcome
        assert outcome[0].holder_owner_id == "other"
    finally:
        store.close()
        other.dispose()


def _claim(store: Store) -> Any:
    try:
        return store.leases.try_claim("s1", "worker-b", "inc-b")
    except Exception as exc:  # reported to the test thread, not lost in this one
        return exc


def _wait_for_a_lock_waiter(conn: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the lease claim never queued behind the session lock")
