"""What differs between PostgreSQL and SQLite: engine options, locking, clock, upsert.

Everything else in the store is one SQLAlchemy Core implementation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from lash_tasks.errors import InvalidEnvironment


class Dialect:
    """Base: the SQLite behaviour, which needs no row locks (writers are serialised)."""

    name = "sqlite"
    durable = True

    def now_ms(self, conn: Connection) -> int:
        value = conn.execute(
            text("SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
        ).scalar_one()
        return int(value)

    def lock_session(self, conn: Connection, session_id: str) -> None:
        """Serialise writers of one session. SQLite: BEGIN IMMEDIATE already did."""

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
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            connect_args={"options": "-c lock_timeout=10000 -c statement_timeout=30000"},
        )
        return engine, PostgresDialect()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database), Dialect()
    raise InvalidEnvironment(
        f"LASH_DATABASE_URL names an unsupported database {backend!r}; use postgresql or sqlite"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    in_memory = database in (None, "", ":memory:")
    if in_memory:
        engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook issue BEGIN IMMEDIATE: a writer takes the write
        # lock up front instead of failing with "database is locked" on upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
