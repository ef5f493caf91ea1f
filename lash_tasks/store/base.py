"""Shared plumbing of the SQL store: transactions, the DB clock, fence checks, row decoding."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, exists, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from lash_tasks.errors import (
    InvalidModelSpec,
    LashError,
    LeaseLost,
    SchemaMissing,
    SchemaVersionError,
    SessionNotFound,
    StoreUnavailable,
)
from lash_tasks.machine import ActiveTurn, Fence, Node, SessionPolicy, parse_policy
from lash_tasks.store import schema as t
from lash_tasks.store.dialects import Dialect
from lash_tasks.store.records import PendingInput, QueuedBatch

NODE_SCHEMA_VERSION = 1
_NODE_PAYLOAD_KEYS = {
    "message": {"role", "text", "tool_calls", "tool_call_id", "name", "is_error", "attachments"},
}


class SqlStoreBase:
    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self.engine = engine
        self.dialect = dialect

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

    def now_ms(self, conn: Connection) -> int:
        return self.dialect.now_ms(conn)

    def _require_session(self, conn: Connection, session_id: str) -> Row[Any]:
        row = conn.execute(select(t.sessions).where(t.sessions.c.session_id == session_id)).first()
        if row is None:
            raise SessionNotFound(f"session {session_id!r} does not exist", session_id=session_id)
        return row

    def _check_fence(self, conn: Connection, fence: Fence, now: int) -> None:
        """Raise `LeaseLost` unless `fence` still holds the session lease at `now`."""
        row = conn.execute(
            select(t.session_leases).where(t.session_leases.c.session_id == fence.session_id)
        ).first()
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

    def _live_generation(self, conn: Connection, session_id: str, now: int) -> int | None:
        row = conn.execute(
            select(t.session_leases).where(t.session_leases.c.session_id == session_id)
        ).first()
        if row is None or row.owner_id is None or row.expires_at is None or row.expires_at <= now:
            return None
        return int(row.fencing_token)

    def _active_turn_row(self, conn: Connection, session_id: str) -> Row[Any] | None:
        return conn.execute(
            select(t.active_turns).where(t.active_turns.c.session_id == session_id)
        ).first()


def holder_is_dead(incarnation_id: Any, now: int) -> ColumnElement[bool]:
    """SQL: the incarnation `incarnation_id` (a column or value) has an expired heartbeat."""
    return exists().where(
        t.worker_heartbeats.c.incarnation_id == incarnation_id,
        t.worker_heartbeats.c.expires_at <= now,
    )


def holder_deadline(conn: Connection, incarnation_id: str | None) -> int | None:
    """When the holder is (or was) declared dead unless it beats again; None without a row."""
    if incarnation_id is None:
        return None
    value = conn.execute(
        select(t.worker_heartbeats.c.expires_at).where(
            t.worker_heartbeats.c.incarnation_id == incarnation_id
        )
    ).scalar()
    return None if value is None else int(value)


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


def encode_node_payload(node: Node) -> dict[str, Any]:
    return {"schema_version": NODE_SCHEMA_VERSION, **dict(node.payload)}


def decode_node(row: Row[Any]) -> Node:
    payload = dict(row.payload)
    version = payload.pop("schema_version", None)
    if version != NODE_SCHEMA_VERSION:
        raise SchemaVersionError(
            f"graph node {row.node_id!r} has schema_version {version!r}; "
            f"this build reads version {NODE_SCHEMA_VERSION}"
        )
    allowed = _NODE_PAYLOAD_KEYS.get(row.kind)
    if allowed is not None and not set(payload) <= allowed:
        unknown = sorted(set(payload) - allowed)
        raise SchemaVersionError(
            f"graph node {row.node_id!r} has unknown fields {unknown} for schema_version "
            f"{NODE_SCHEMA_VERSION}"
        )
    return Node(row.node_id, row.parent_node_id, row.kind, payload, row.created_at)


def decode_policy(row: Row[Any]) -> SessionPolicy | None:
    """The persisted policy, or None for a session created without one (the opener fills
    it). Any shape this build does not know is a `SchemaVersionError` (a stored model spec
    with unknown fields is corrupt data, not a caller's bad input)."""
    if row.config == {}:
        return None
    try:
        return parse_policy(row.config)
    except InvalidModelSpec as exc:
        raise SchemaVersionError(
            f"session {row.session_id!r} has a stored config that does not match schema v1: "
            f"{exc.message}"
        ) from None


def decode_active_turn(row: Row[Any] | None) -> ActiveTurn | None:
    if row is None:
        return None
    return ActiveTurn(
        turn_id=row.turn_id,
        step_index=row.step_index,
        input_claim_id=row.input_claim_id,
        queue_claim_id=row.queue_claim_id,
        cancel_requested=bool(row.cancel_requested),
        state=dict(row.state or {}),
    )


def decode_input(row: Row[Any]) -> PendingInput:
    return PendingInput(
        input_id=row.input_id,
        session_id=row.session_id,
        enqueue_seq=row.enqueue_seq,
        source_key=row.source_key,
        ingress=row.ingress,
        state=row.state,
        input=dict(row.input),
        claim_id=row.claim_id,
        turn_id=row.turn_id,
        enqueued_at=row.enqueued_at,
        updated_at=row.updated_at,
    )


def decode_batch(row: Row[Any], payloads: list[dict[str, Any]]) -> QueuedBatch:
    return QueuedBatch(
        batch_id=row.batch_id,
        session_id=row.session_id,
        enqueue_seq=row.enqueue_seq,
        source_key=row.source_key,
        work_class=row.work_class,
        slot_policy=row.slot_policy,
        merge_key=row.merge_key,
        state=row.state,
        payloads=tuple(payloads),
        available_at=row.available_at,
    )
