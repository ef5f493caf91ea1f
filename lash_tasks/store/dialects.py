"""What differs between PostgreSQL and SQLite: engine options, locking, clock, upsert.

Everything else in the store is one SQLAlchemy Core implementation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import weakref
from typing import Any

from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from lash_tasks.errors import InvalidEnvironment


class Dialect:
    """Base: the SQLite behaviour, which needs no row locks (writers are serialised)."""

    name = "sqlite"

    def __init__(self, durable: bool = True) -> None:
        self.durable = durable

    def now_ms(self, conn: Connection) -> int:
        value = conn.execute(
            text("SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
        ).scalar_one()
        return int(value)

    def lock_session(self, conn: Connection, session_id: str) -> None:
        """Serialise writers of one session. SQLite: BEGIN IMMEDIATE already did."""

    def lock_session_now(self, conn: Connection, session_id: str) -> int:
        """`lock_session`, then the clock read once the lock is held, in one round trip."""
        self.lock_session(conn, session_id)
        return self.now_ms(conn)

    def lock_key(self, conn: Connection, key: str) -> None:
        """Serialise writers of any named resource (process ids, maintenance slots)."""

    def for_update(self, query: Select[Any], skip_locked: bool = False) -> Select[Any]:
        return query


class PostgresDialect(Dialect):
    name = "postgresql"

    def now_ms(self, conn: Connection) -> int:
        value = conn.execute(
            text("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
        ).scalar_one()
        return int(value)

    def lock_session(self, conn: Connection, session_id: str) -> None:
        # Without this, two concurrent first lease claims under READ COMMITTED both win.
        self.lock_key(conn, "session:" + session_id)

    def lock_key(self, conn: Connection, key: str) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})

    def lock_session_now(self, conn: Connection, session_id: str) -> int:
        # The lock is taken in a subquery that PostgreSQL cannot flatten (the function is
        # volatile), so the clock is read after the lock is granted, never before the wait.
        value = conn.execute(
            text(
                "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint "
                "FROM (SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))) AS locked"
            ),
            {"k": "session:" + session_id},
        ).scalar_one()
        return int(value)

    def for_update(self, query: Select[Any], skip_locked: bool = False) -> Select[Any]:
        return query.with_for_update(skip_locked=skip_locked)


def make_engine(url: str) -> tuple[Engine, Dialect]:
    """Build an engine with the options each database needs. Call after fork, per process."""
    try:
        parsed = make_url(url)
    except Exception:
        raise InvalidEnvironment(
            "LASH_DATABASE_URL is not a database URL (expected sqlite:///path or "
            "postgresql+psycopg2://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        engine = create_engine(
            parsed,
            # Session writers serialise on advisory locks, then read what committed before
            # them: that needs each statement's fresh snapshot, which READ COMMITTED gives
            # and REPEATABLE READ / SERIALIZABLE (a server or role default) would not.
            isolation_level="READ COMMITTED",
            pool_size=5,
            max_overflow=10,
            connect_args={"options": "-c lock_timeout=10000 -c statement_timeout=30000"},
        )
        _ping_after_idle(engine)
        return engine, PostgresDialect()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return _ephemeral_sqlite_engine(), Dialect(durable=False)
        return _sqlite_engine(url), Dialect()
    raise InvalidEnvironment(
        f"LASH_DATABASE_URL names an unsupported database {backend!r}; use postgresql or sqlite"
    )


# A connection idle this long is pinged before use. SQLAlchemy's `pool_pre_ping` pings on
# every checkout: a round trip per transaction, which for a busy worker is a fifth of a
# step's cost. A connection in steady use is known good; one broken in between (a server
# restart) fails its statement, which fails the transaction retryably, and is replaced.
PING_AFTER_IDLE_S = 2.0


def _ping_after_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("connection failed its ping after idling") from exc


def _ephemeral_sqlite_engine() -> Engine:
    """`sqlite:///:memory:` as a private temporary file, removed with the engine.

    A real in-memory database is one connection shared by every thread (the lease keeper,
    tool threads), where one thread's ROLLBACK undoes another's transaction. A temporary
    file gives each thread its own connection and SQLite's own locking, and is still
    ephemeral: the store reports the `inline` durability tier.
    """
    handle, path = tempfile.mkstemp(prefix="lash-ephemeral-", suffix=".db")
    os.close(handle)
    engine = _sqlite_engine(f"sqlite:///{path}")
    weakref.finalize(engine, _remove_quietly, path)
    return engine


def _remove_quietly(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.remove(path + suffix)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook issue BEGIN IMMEDIATE: a writer takes the write
        # lock up front instead of failing with "database is locked" on upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
