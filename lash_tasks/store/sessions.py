"""`Sessions`: session rows and graph reads — create, load (full graph or active path), delete."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    CTE,
    Connection,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)

from lash_tasks.errors import SessionExists
from lash_tasks.machine import Node, SessionGraph, SessionPolicy, parse_policy
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.process_retention import revoke_session_in
from lash_tasks.store.records import (
    ActivePath,
    FullGraph,
    InputState,
    LoadedSession,
    ReadScope,
    SessionActivity,
    SessionDeleteReport,
    SessionRecord,
    SessionSummary,
)
from lash_tasks.store.rows import decode_active_turn, decode_node, decode_session


class Sessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        session_id: str,
        policy: SessionPolicy | None,
        *,
        parent_session_id: str | None = None,
        parent_process_id: str | None = None,
    ) -> SessionRecord:
        """Create a session at head revision 0. Same id and same policy → the existing record.

        `policy=None` leaves it unconfigured: the first runtime that opens the session
        fills it from the caller's policy (and must bring a model spec). A subagent's child
        session names its parent session and process."""
        check_session_id(session_id)
        if parent_session_id is not None:
            check_session_id(parent_session_id)
        config = parse_policy(policy).model_dump(mode="json") if policy is not None else {}
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            existing = conn.execute(
                select(t.sessions).where(t.sessions.c.session_id == session_id)
            ).first()
            if existing is not None:
                if existing.config != config:
                    raise SessionExists(
                        f"session {session_id!r} already exists with a different configuration",
                        session_id=session_id,
                    )
                return decode_session(existing)
            now = self.db.now_ms(conn)
            conn.execute(
                insert(t.sessions).values(
                    session_id=session_id,
                    head_revision=0,
                    config=config,
                    leaf_node_id=None,
                    input_tokens=0,
                    output_tokens=0,
                    graph_changed_at=now,
                    parent_session_id=parent_session_id,
                    parent_process_id=parent_process_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            return decode_session(self.db.require_session(conn, session_id))

    def fill_policy(self, session_id: str, policy: SessionPolicy) -> SessionRecord:
        """Give an unconfigured session its policy; a configured one keeps its own."""
        check_session_id(session_id)
        config = parse_policy(policy).model_dump(mode="json")
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            row = self.db.require_session(conn, session_id)
            if row.config == {}:
                conn.execute(
                    update(t.sessions)
                    .where(t.sessions.c.session_id == session_id)
                    .values(config=config)
                )
                row = self.db.require_session(conn, session_id)
            return decode_session(row)

    def record(self, session_id: str) -> SessionRecord:
        check_session_id(session_id)
        with self.db.read() as conn:
            return decode_session(self.db.require_session(conn, session_id))

    def exists(self, session_id: str) -> bool:
        check_session_id(session_id)
        with self.db.read() as conn:
            row = conn.execute(
                select(t.sessions.c.session_id).where(t.sessions.c.session_id == session_id)
            ).first()
            return row is not None

    def children(self, session_id: str) -> list[SessionRecord]:
        """Child sessions (subagents) whose parent is `session_id`, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.sessions)
                .where(t.sessions.c.parent_session_id == session_id)
                .order_by(t.sessions.c.created_at, t.sessions.c.session_id)
            )
            return [decode_session(r) for r in rows]

    def list_ids(self, limit: int = 1000) -> list[str]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.sessions.c.session_id).order_by(t.sessions.c.created_at).limit(limit)
            )
            return [r.session_id for r in rows]

    def summaries(
        self,
        *,
        activity: SessionActivity | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[SessionSummary]:
        """Sessions in id order after `after`, at most `limit`, optionally only those with
        this `activity`."""
        s, a, p = t.sessions, t.active_turns, t.pending_inputs
        running = exists().where(a.c.session_id == s.c.session_id)
        pending = (
            select(func.count())
            .where(
                p.c.session_id == s.c.session_id,
                p.c.state.in_([InputState.PENDING, InputState.PENDING_ACTIVE]),
            )
            .scalar_subquery()
        )
        query = select(
            s.c.session_id,
            s.c.head_revision,
            s.c.config,
            s.c.updated_at,
            running.label("running"),
            pending.label("pending"),
        )
        if after is not None:
            query = query.where(s.c.session_id > after)
        if activity == "running":
            query = query.where(running)
        elif activity == "waiting":
            query = query.where(~running, pending > 0)
        elif activity == "idle":
            query = query.where(~running, pending == 0)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(s.c.session_id).limit(limit)).all()
        return [_summary(r) for r in rows]

    def load(self, session_id: str, scope: ReadScope | None = None) -> LoadedSession:
        """Load a session's record, graph (per `scope`) and active turn in one snapshot."""
        check_session_id(session_id)
        scope = scope or FullGraph()
        with self.db.read() as conn, conn.begin():
            record = decode_session(self.db.require_session(conn, session_id))
            graph = load_graph_in(conn, record, scope)
            active = decode_active_turn(self.db.active_turn_row(conn, session_id))
        return LoadedSession(record=record, graph=graph, active_turn=active, scope=scope)

    def load_node(self, session_id: str, node_id: str) -> Node | None:
        """One node by id; tombstoned or missing → None."""
        check_session_id(session_id)
        with self.db.read() as conn:
            self.db.require_session(conn, session_id)
            row = conn.execute(
                select(t.graph_nodes).where(
                    t.graph_nodes.c.session_id == session_id,
                    t.graph_nodes.c.node_id == node_id,
                    t.graph_nodes.c.tombstoned_at.is_(None),
                )
            ).first()
            return decode_node(row) if row is not None else None

    def delete(self, session_id: str) -> SessionDeleteReport:
        """Delete every row of the session and nothing of any other session. Its process
        grants and wake bookkeeping are revoked; running processes live on (never cancelled
        silently) and those left without an owner are reported. Unknown session: a no-op
        report (`existed=False`)."""
        check_session_id(session_id)
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            existed = (
                conn.execute(
                    select(t.sessions.c.session_id).where(t.sessions.c.session_id == session_id)
                ).first()
                is not None
            )
            revoked = revoke_session_in(self.db, conn, session_id, self.db.now_ms(conn))
            batch_ids = select(t.queued_work.c.batch_id).where(
                t.queued_work.c.session_id == session_id
            )
            conn.execute(
                delete(t.queued_work_items).where(t.queued_work_items.c.batch_id.in_(batch_ids))
            )
            for table in t.SESSION_TABLES:
                conn.execute(delete(table).where(table.c.session_id == session_id))
            return SessionDeleteReport(
                session_id=session_id,
                existed=existed,
                orphaned_process_ids=revoked.orphaned_process_ids,
                revoked_grants=revoked.revoked_grants,
                cleared_wakes=revoked.cleared_wakes,
            )

    def orphaned_node_ids(self, session_id: str) -> list[str]:
        """Live (untombstoned) nodes that are not on the active path."""
        return self.load(session_id).graph.orphaned_node_ids()


def _summary(row: Any) -> SessionSummary:
    config = row.config or {}
    model = config.get("model")
    pending = int(row.pending)
    activity: SessionActivity = "running" if row.running else "waiting" if pending else "idle"
    return SessionSummary(
        session_id=row.session_id,
        head_revision=int(row.head_revision),
        provider=config.get("provider"),
        model=model.get("id") if isinstance(model, dict) else None,
        activity=activity,
        pending_inputs=pending,
        updated_at=int(row.updated_at),
    )


def load_graph_in(conn: Connection, record: SessionRecord, scope: ReadScope) -> SessionGraph:
    """The session's graph per `scope`, on the caller's connection: the active path from
    `scope.leaf` (default: the stored leaf), or every live node."""
    if isinstance(scope, ActivePath):
        leaf = scope.leaf if scope.leaf is not None else record.leaf_node_id
        return SessionGraph.from_nodes(_active_path_nodes(conn, record.session_id, leaf), leaf)
    return SessionGraph.from_nodes(_all_nodes(conn, record.session_id), record.leaf_node_id)


def _all_nodes(conn: Connection, session_id: str) -> list[Node]:
    rows = conn.execute(
        select(t.graph_nodes)
        .where(t.graph_nodes.c.session_id == session_id, t.graph_nodes.c.tombstoned_at.is_(None))
        .order_by(t.graph_nodes.c.seq)
    )
    return [decode_node(r) for r in rows]


def _active_path_nodes(conn: Connection, session_id: str, leaf: str | None) -> list[Node]:
    """Walk parent links from `leaf` with a recursive CTE: cost grows with the path only."""
    if leaf is None:
        return []
    n = t.graph_nodes
    # The CTE carries whole rows, so each recursion step is one primary-key lookup and
    # the final read never joins back against the session's whole graph.
    columns = [
        n.c.node_id,
        n.c.parent_node_id,
        n.c.kind,
        n.c.payload,
        n.c.created_at,
        n.c.tombstoned_at,
    ]
    base = select(*columns, literal(0).label("depth")).where(
        n.c.session_id == session_id, n.c.node_id == leaf
    )
    path = base.cte("active_path", recursive=True)
    step = select(*columns, (path.c.depth + 1).label("depth")).where(
        and_(n.c.session_id == session_id, n.c.node_id == path.c.parent_node_id)
    )
    path = path.union_all(step)
    rows = conn.execute(
        select(path).where(path.c.tombstoned_at.is_(None)).order_by(path.c.depth.desc())
    )
    return [decode_node(r) for r in rows]


def ancestry(session_id: str, starts: Iterable[str | None]) -> CTE:
    """Every stored node (tombstoned too) from each start up to its root, as a CTE of
    `node_id`s: one primary-key lookup per node on the way."""
    n = t.graph_nodes
    path = (
        select(n.c.node_id, n.c.parent_node_id)
        .where(
            n.c.session_id == session_id,
            n.c.node_id.in_(sorted({s for s in starts if isinstance(s, str)})),
        )
        .cte("ancestry", recursive=True, nesting=True)
    )
    return path.union(
        select(n.c.node_id, n.c.parent_node_id).where(
            n.c.session_id == session_id, n.c.node_id == path.c.parent_node_id
        )
    )
