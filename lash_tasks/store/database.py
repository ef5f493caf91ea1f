"""`Database`: one engine and its dialect, and what every store part needs from them.

Transactions (with database failures mapped to typed errors), read connections, the
database clock, the per-session lock, and the guards a part checks inside its own
transaction: the session exists, a fence still holds the lease, which lease generation is
live, which turn is active. The parts (`store.sessions`, `store.leases`, ...) hold one
`Database` each and nothing else; `Store` builds them all over the same one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, exists, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from lash_tasks.errors import (
    LashError,
    LeaseLost,
    SchemaMissing,
    SessionNotFound,
    StoreUnavailable,
)
from lash_tasks.machine import Fence
from lash_tasks.store import schema as t
from lash_tasks.store.dialects import Dialect, make_engine


class Database:
    """One SQLAlchemy engine on PostgreSQL or SQLite. Build one per worker process."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self.engine = engine
        self.dialect = dialect

    @classmethod
    def from_url(cls, url: str) -> Database:
        engine, dialect = make_engine(url)
        return cls(engine, dialect)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def durability_tier(self) -> str:
        return "durable" if self.dialect.durable else "inline"

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction. Connection-level failures surface as retryable `StoreUnavailable`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except LashError:
            raise
        except (DBAPIError, SQLAlchemyTimeoutError) as exc:
            raise explain_database_error(exc) from exc

    def read(self) -> Connection:
        """A connection for reads (`with db.read() as conn:`); it commits nothing."""
        return self.engine.connect()

    def now_ms(self, conn: Connection) -> int:
        """The database clock: every lease and timestamp compares against this one."""
        return self.dialect.now_ms(conn)

    def db_now_ms(self) -> int:
        """The database clock, read on a connection of its own."""
        with self.read() as conn:
            return self.now_ms(conn)

    def lock_session(self, conn: Connection, session_id: str) -> None:
        """Serialise this transaction with every other writer of the session."""
        self.dialect.lock_session(conn, session_id)

    def lock_session_now(self, conn: Connection, session_id: str) -> int:
        """`lock_session` and then the database clock, in one round trip where it can."""
        return self.dialect.lock_session_now(conn, session_id)

    def lock_key(self, conn: Connection, key: str) -> None:
        """Serialise this transaction with every other writer of the named resource."""
        self.dialect.lock_key(conn, key)

    def require_session(self, conn: Connection, session_id: str) -> Row[Any]:
        row = conn.execute(select(t.sessions).where(t.sessions.c.session_id == session_id)).first()
        if row is None:
            raise SessionNotFound(f"session {session_id!r} does not exist", session_id=session_id)
        return row

    def read_head(
        self,
        conn: Connection,
        session_id: str,
        *,
        stamp_of_turn: str | None = None,
        queue_flag: bool = False,
    ) -> SessionHead:
        """The session row, its lease row and its active turn row, in one statement; with
        `stamp_of_turn` also that turn's stamp (a replayed commit), with `queue_flag`
        whether any queued work is ready or claimed (else no queue claim can find any)."""
        s, leases, turns, stamps = t.sessions, t.session_leases, t.active_turns, t.turn_commits
        columns: list[Any] = [
            *s.c,
            *(c.label(_LEASE + c.name) for c in leases.c),
            *(c.label(_TURN + c.name) for c in turns.c),
        ]
        joined = s.outerjoin(leases, leases.c.session_id == s.c.session_id).outerjoin(
            turns, turns.c.session_id == s.c.session_id
        )
        if stamp_of_turn is not None:
            columns += [c.label(_STAMP + c.name) for c in stamps.c]
            joined = joined.outerjoin(
                stamps,
                and_(stamps.c.session_id == s.c.session_id, stamps.c.turn_id == stamp_of_turn),
            )
        if queue_flag:
            q = t.queued_work
            # QueueState.READY and CLAIMED (store/work_queue.py imports this module).
            waiting = exists().where(
                q.c.session_id == s.c.session_id, q.c.state.in_(["ready", "claimed"])
            )
            columns.append(waiting.label("has_queued_work"))
        row = conn.execute(
            select(*columns).select_from(joined).where(s.c.session_id == session_id)
        ).first()
        if row is None:
            raise SessionNotFound(f"session {session_id!r} does not exist", session_id=session_id)
        values = row._mapping
        return SessionHead(
            session=_part(values, "", s),
            lease=_part(values, _LEASE, leases),
            active_turn=_part(values, _TURN, turns),
            stamp_read=stamp_of_turn is not None,
            stamp=_part(values, _STAMP, stamps) if stamp_of_turn is not None else None,
            has_queued_work=bool(values["has_queued_work"]) if queue_flag else None,
        )

    def check_fence(self, conn: Connection, fence: Fence, now: int) -> None:
        """Raise `LeaseLost` unless `fence` still holds the session lease at `now`."""
        row = conn.execute(
            select(t.session_leases).where(t.session_leases.c.session_id == fence.session_id)
        ).first()
        check_fence_row(fence, row, now)

    def live_generation(self, conn: Connection, session_id: str, now: int) -> int | None:
        """The fencing token of the session's live lease, or None when nobody holds it."""
        row = conn.execute(
            select(t.session_leases).where(t.session_leases.c.session_id == session_id)
        ).first()
        if row is None or row.owner_id is None or row.expires_at is None or row.expires_at <= now:
            return None
        return int(row.fencing_token)

    def active_turn_row(self, conn: Connection, session_id: str) -> Row[Any] | None:
        return conn.execute(
            select(t.active_turns).where(t.active_turns.c.session_id == session_id)
        ).first()


def check_fence_row(fence: Fence, row: Any, now: int) -> None:
    """Raise `LeaseLost` unless the lease row `row` (read in this transaction) is `fence`'s
    and live at `now`."""
    if (
        row is None
        or row.owner_id != fence.owner_id
        or row.lease_token != fence.lease_token
        or row.fencing_token != fence.fencing_token
        or row.expires_at is None
        or row.expires_at <= now
    ):
        raise LeaseLost(
            f"lease on session {fence.session_id!r} with fencing token "
            f"{fence.fencing_token} is no longer held",
            session_id=fence.session_id,
        )


_LEASE = "lease__"
_TURN = "turn__"
_STAMP = "stamp__"


@dataclass(frozen=True)
class SessionHead:
    """What a session's writer reads first: its row, its lease and its active turn (the
    latter two None when absent). Rows are read by attribute, like SQLAlchemy rows."""

    session: Any
    lease: Any | None
    active_turn: Any | None
    # Read only when asked for (see `Database.read_head`).
    stamp_read: bool = False
    stamp: Any | None = None
    has_queued_work: bool | None = None


def _part(values: Any, prefix: str, table: Any) -> Any | None:
    names = [c.name for c in table.c]
    if values[prefix + "session_id"] is None:
        return None
    return SimpleNamespace(**{name: values[prefix + name] for name in names})


def explain_database_error(exc: Exception) -> Exception:
    """The typed error a database failure means for a caller, or `exc` itself."""
    text = str(getattr(exc, "orig", None) or exc)
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return SchemaMissing(
            "the database has no lash-tasks schema yet: run `lash-tasks db upgrade`"
        )
    if isinstance(exc, SQLAlchemyTimeoutError):
        return StoreUnavailable("no database connection free in the pool")
    if isinstance(exc, OperationalError):
        return StoreUnavailable(f"database unavailable: {text}".splitlines()[0])
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreUnavailable("database connection lost")
    return exc
