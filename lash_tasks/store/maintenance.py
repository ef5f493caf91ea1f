"""Store maintenance: orphans, tombstones, vacuum, and what the sweeper needs to find."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, exists, func, or_, select, update

from lash_tasks.store import schema as t
from lash_tasks.store.records import (
    TERMINAL_INPUT_STATES,
    InputState,
    RunnableSession,
    VacuumReport,
    check_session_id,
)
from lash_tasks.store.sessions import SessionsMixin


class MaintenanceMixin(SessionsMixin):
    def orphaned_node_ids(self, session_id: str) -> list[str]:
        """Live (untombstoned) nodes that are not on the active path."""
        loaded = self.load(session_id)
        return loaded.graph.orphaned_node_ids()

    def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> int:
        """Hide nodes from every read. Nodes on the current active path are never tombstoned."""
        check_session_id(session_id)
        if not node_ids:
            return 0
        with self.tx() as conn:
            self.dialect.lock_session(conn, session_id)
            record = self._require_session(conn, session_id)
            on_path = {
                n.node_id for n in self._active_path_nodes(conn, session_id, record.leaf_node_id)
            }
            targets = [n for n in node_ids if n not in on_path]
            if not targets:
                return 0
            result = conn.execute(
                update(t.graph_nodes)
                .where(
                    t.graph_nodes.c.session_id == session_id,
                    t.graph_nodes.c.node_id.in_(targets),
                    t.graph_nodes.c.tombstoned_at.is_(None),
                )
                .values(tombstoned_at=self.now_ms(conn))
            )
            return int(result.rowcount)

    def sessions_with_graph_changes(self, since_ms: int, limit: int = 1000) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.sessions.c.session_id)
                .where(t.sessions.c.graph_changed_at >= since_ms)
                .order_by(t.sessions.c.graph_changed_at)
                .limit(limit)
            )
            return [r.session_id for r in rows]

    def vacuum(
        self, input_retention_ms: int = 0, event_retention_ms: int = 0, event_keep: int = 100
    ) -> VacuumReport:
        """Physically delete tombstoned nodes, terminal inputs, finished queued work, the
        journal rows of committed turns and old session events. Reports only rows it
        actually removed.

        Terminal inputs younger than `input_retention_ms` stay: they answer `wait_for_input`
        and keep a recently used source key idempotent. Session events go once older than
        `event_retention_ms`, but a session's last `event_keep` always stay, so its readers'
        cursors can be told from cursors of the future."""
        with self.tx() as conn:
            now = self.now_ms(conn)
            input_cutoff = now - input_retention_ms
            e, newer = t.session_events, t.session_events.alias("newer")
            last_seq = select(func.max(newer.c.seq)).where(newer.c.session_id == e.c.session_id)
            events = conn.execute(
                delete(e).where(
                    e.c.created_at <= now - event_retention_ms,
                    e.c.seq <= last_seq.scalar_subquery() - event_keep,
                )
            ).rowcount
            nodes = conn.execute(
                delete(t.graph_nodes).where(t.graph_nodes.c.tombstoned_at.is_not(None))
            ).rowcount
            inputs = conn.execute(
                delete(t.pending_inputs).where(
                    t.pending_inputs.c.state.in_([s.value for s in TERMINAL_INPUT_STATES]),
                    t.pending_inputs.c.updated_at <= input_cutoff,
                )
            ).rowcount
            done = select(t.queued_work.c.batch_id).where(
                t.queued_work.c.state.in_(["completed", "cancelled"])
            )
            conn.execute(
                delete(t.queued_work_items).where(t.queued_work_items.c.batch_id.in_(done))
            )
            queued = conn.execute(
                delete(t.queued_work).where(t.queued_work.c.state.in_(["completed", "cancelled"]))
            ).rowcount
            j = t.effect_journal
            committed = exists().where(
                t.turn_commits.c.session_id == j.c.session_id,
                t.turn_commits.c.turn_id == j.c.turn_id,
            )
            journal = conn.execute(delete(j).where(committed)).rowcount
            return VacuumReport(int(nodes), int(inputs), int(queued), int(journal), int(events))

    def runnable_sessions(self, limit: int = 1000) -> list[RunnableSession]:
        """Sessions with pending input, ready queued work or an active turn, and no live lease."""
        with self.engine.connect() as conn, conn.begin():
            now = self.now_ms(conn)
            leases = t.session_leases
            lease_live = exists().where(
                leases.c.session_id == t.sessions.c.session_id,
                leases.c.owner_id.is_not(None),
                leases.c.expires_at > now,
            )
            p = t.pending_inputs
            has_input = exists().where(
                p.c.session_id == t.sessions.c.session_id,
                or_(
                    p.c.state.in_([InputState.PENDING, InputState.PENDING_ACTIVE]),
                    and_(p.c.state == InputState.CLAIMED),
                ),
            )
            q = t.queued_work
            has_work = exists().where(
                q.c.session_id == t.sessions.c.session_id,
                q.c.state.in_(["ready", "claimed"]),
                q.c.available_at <= now,
            )
            has_turn = exists().where(t.active_turns.c.session_id == t.sessions.c.session_id)
            rows = conn.execute(
                select(
                    t.sessions.c.session_id,
                    has_input.label("has_input"),
                    has_work.label("has_work"),
                    has_turn.label("has_turn"),
                )
                .where(or_(has_input, has_work, has_turn), ~lease_live)
                .order_by(t.sessions.c.updated_at)
                .limit(limit)
            ).all()
            out = []
            for r in rows:
                reasons = tuple(
                    name
                    for name, flag in (
                        ("pending_input", r.has_input),
                        ("queued_work", r.has_work),
                        ("active_turn", r.has_turn),
                    )
                    if flag
                )
                out.append(RunnableSession(r.session_id, reasons))
            return out

    def count_rows(self, table_name: str, session_id: str | None = None) -> int:
        """Row count of one table (for reports, operators and tests)."""
        table = t.metadata.tables[table_name]
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(table)
            if session_id is not None:
                query = query.where(table.c.session_id == session_id)
            return int(conn.execute(query).scalar_one())
