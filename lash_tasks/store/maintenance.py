"""`Maintenance`: orphans, tombstones, vacuum, what the sweeper needs to find, one row per
(job, scheduled slot) of the maintenance jobs, and pruning of finished processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, Connection, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from lash_tasks.machine.ids import check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.heartbeats import holder_is_dead
from lash_tasks.store.leases import DEFAULT_TTL_MS
from lash_tasks.store.process_retention import prune_in
from lash_tasks.store.records import (
    TERMINAL_INPUT_STATES,
    InputState,
    RunnableSession,
    VacuumReport,
)
from lash_tasks.store.sessions import ancestry
from lash_tasks.store.work_queue import DONE_QUEUE_STATES, OPEN_QUEUE_STATES, QueueState


class Maintenance:
    def __init__(self, db: Database) -> None:
        self.db = db

    def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> int:
        """Hide nodes from every read. Never touches a node that is or is about to be on an
        active path: the stored one, the one a running turn is branching to, or the one a
        waiting input will branch to."""
        check_session_id(session_id)
        if not node_ids:
            return 0
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            protected = self._protected_paths(conn, session_id)
            n = t.graph_nodes
            result = conn.execute(
                update(n)
                .where(
                    n.c.session_id == session_id,
                    n.c.node_id.in_(list(node_ids)),
                    n.c.tombstoned_at.is_(None),
                    n.c.node_id.not_in(select(protected.c.node_id)),
                )
                .values(tombstoned_at=self.db.now_ms(conn))
            )
            return int(result.rowcount)

    def _protected_paths(self, conn: Connection, session_id: str) -> CTE:
        """Nodes on the paths that are live or about to be: from the stored leaf, from the
        active turn's branch point (it loaded that path and will commit under it), and from
        the branch point of every input not yet answered."""
        record = self.db.require_session(conn, session_id)
        anchors: set[str | None] = {record.leaf_node_id}
        active = self.db.active_turn_row(conn, session_id)
        if active is not None:
            anchors.add((active.state or {}).get("branch_from"))
        p = t.pending_inputs
        waiting = conn.execute(
            select(p.c.input).where(
                p.c.session_id == session_id,
                p.c.state.not_in([s.value for s in TERMINAL_INPUT_STATES]),
            )
        )
        anchors.update(row.input.get("branch_from") for row in waiting)
        return ancestry(session_id, anchors)

    def tombstone_old_orphans(self, session_id: str, older_than_ms: int) -> int:
        """Tombstone every live node off the protected paths (see `tombstone_nodes`) that
        was committed at least `older_than_ms` ago. Age is measured on the database clock
        (`created_ms`), never on the writer's own `created_at`."""
        check_session_id(session_id)
        with self.db.tx() as conn:
            self.db.lock_session(conn, session_id)
            protected = self._protected_paths(conn, session_id)
            now = self.db.now_ms(conn)
            n = t.graph_nodes
            result = conn.execute(
                update(n)
                .where(
                    n.c.session_id == session_id,
                    n.c.tombstoned_at.is_(None),
                    n.c.created_ms <= now - older_than_ms,
                    n.c.node_id.not_in(select(protected.c.node_id)),
                )
                .values(tombstoned_at=now)
            )
            return int(result.rowcount)

    def changed_sessions_page(
        self,
        since_ms: int,
        until_ms: int,
        after: tuple[int, str] | None = None,
        limit: int = 500,
    ) -> list[tuple[int, str]]:
        """One page of `(graph_changed_at, session_id)` for sessions whose graph changed in
        [since_ms, until_ms], in that order, strictly after the keyset `after` (the last
        row of the previous page). Paging never skips a session, however many share one
        timestamp."""
        s = t.sessions
        query = select(s.c.graph_changed_at, s.c.session_id).where(
            s.c.graph_changed_at >= since_ms, s.c.graph_changed_at <= until_ms
        )
        if after is not None:
            changed_at, session_id = after
            query = query.where(
                or_(
                    s.c.graph_changed_at > changed_at,
                    and_(s.c.graph_changed_at == changed_at, s.c.session_id > session_id),
                )
            )
        with self.db.read() as conn:
            rows = conn.execute(
                query.order_by(s.c.graph_changed_at, s.c.session_id).limit(limit)
            ).all()
            return [(int(r.graph_changed_at), str(r.session_id)) for r in rows]

    def vacuum(
        self,
        input_retention_ms: int = 0,
        journal_retention_ms: int = DEFAULT_TTL_MS,
        event_retention_ms: int = 0,
        event_keep: int = 100,
    ) -> VacuumReport:
        """Physically delete tombstoned nodes, terminal inputs, finished queued work, the
        journal rows of committed turns, old session events and sent replies. Reports only
        rows it actually removed.

        Terminal inputs (and sent replies) younger than `input_retention_ms` stay: they
        answer `wait_for_input` and keep a recently used source key idempotent. A committed
        turn's journal stays for `journal_retention_ms` (the lease ttl) after its commit: a
        stale worker that has not yet noticed its lost lease replays from it instead of
        calling again. Journal rows of a session that no longer exists (or of an earlier
        session under the same id) go.
        Session events go once older than `event_retention_ms`, but a session's last
        `event_keep` always stay, so its readers' cursors can be told from cursors of the
        future."""
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
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
                t.queued_work.c.state.in_(DONE_QUEUE_STATES)
            )
            conn.execute(
                delete(t.queued_work_items).where(t.queued_work_items.c.batch_id.in_(done))
            )
            queued = conn.execute(
                delete(t.queued_work).where(t.queued_work.c.state.in_(DONE_QUEUE_STATES))
            ).rowcount
            j, stamps, sessions = t.effect_journal, t.turn_commits, t.sessions
            committed_long_ago = exists().where(
                stamps.c.session_id == j.c.session_id,
                stamps.c.turn_id == j.c.turn_id,
                stamps.c.committed_at <= now - journal_retention_ms,
            )
            owner_lives = exists().where(
                sessions.c.session_id == j.c.session_id,
                sessions.c.created_at <= j.c.created_at,
            )
            journal = conn.execute(delete(j).where(or_(committed_long_ago, ~owner_lives))).rowcount
            r = t.reply_outbox
            replies = conn.execute(
                delete(r).where(r.c.sent_at.is_not(None), r.c.sent_at <= input_cutoff)
            ).rowcount
            return VacuumReport(
                int(nodes), int(inputs), int(queued), int(journal), int(events), int(replies)
            )

    def runnable_sessions(self, limit: int = 1000) -> list[RunnableSession]:
        """Sessions with pending input, ready queued work or an active turn, and no live lease."""
        with self.db.read() as conn, conn.begin():
            now = self.db.now_ms(conn)
            leases = t.session_leases
            lease_live = exists().where(
                leases.c.session_id == t.sessions.c.session_id,
                leases.c.owner_id.is_not(None),
                leases.c.expires_at > now,
                ~holder_is_dead(leases.c.incarnation_id, now),
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
                q.c.state.in_(OPEN_QUEUE_STATES),
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
        with self.db.read() as conn:
            query = select(func.count()).select_from(table)
            if session_id is not None:
                query = query.where(table.c.session_id == session_id)
            return int(conn.execute(query).scalar_one())

    def fleet_counts(self) -> dict[str, int]:
        """What waits across the fleet: sessions, inputs still pending (not claimed, not
        answered), running turns, queued work still ready."""
        p, q = t.pending_inputs, t.queued_work
        with self.db.read() as conn, conn.begin():

            def count(table: Any, *where: Any) -> int:
                return int(
                    conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
                )

            return {
                "sessions": count(t.sessions),
                "pending_inputs": count(
                    p, p.c.state.in_([InputState.PENDING, InputState.PENDING_ACTIVE])
                ),
                "active_turns": count(t.active_turns),
                "queued_work": count(q, q.c.state == QueueState.READY),
            }

    def claim_slot(self, job: str, slot: str) -> bool:
        """True for the first claimant of (job, slot); two beats firing the same slot get one."""
        try:
            with self.db.tx() as conn:
                self.db.lock_key(conn, f"maintenance:{job}:{slot}")
                exists = conn.execute(
                    select(t.maintenance_runs.c.job).where(
                        t.maintenance_runs.c.job == job, t.maintenance_runs.c.slot == slot
                    )
                ).first()
                if exists is not None:
                    return False
                conn.execute(
                    insert(t.maintenance_runs).values(
                        job=job, slot=slot, started_at=self.db.now_ms(conn)
                    )
                )
                return True
        except IntegrityError:
            return False

    def finish_slot(self, job: str, slot: str, report: dict[str, Any]) -> None:
        with self.db.tx() as conn:
            conn.execute(
                update(t.maintenance_runs)
                .where(t.maintenance_runs.c.job == job, t.maintenance_runs.c.slot == slot)
                .values(finished_at=self.db.now_ms(conn), report=report)
            )

    def last_start(self, job: str, before_slot: str) -> int | None:
        """Start time of the latest earlier run of `job` (for "changed since last run")."""
        with self.db.read() as conn:
            value = conn.execute(
                select(func.max(t.maintenance_runs.c.started_at)).where(
                    t.maintenance_runs.c.job == job,
                    t.maintenance_runs.c.slot != before_slot,
                    t.maintenance_runs.c.finished_at.is_not(None),
                )
            ).scalar_one()
            return int(value) if value is not None else None

    def runs(self, job: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.maintenance_runs)
                .where(t.maintenance_runs.c.job == job)
                .order_by(t.maintenance_runs.c.started_at)
            )
            return [dict(r._mapping) for r in rows]

    def prune_terminal_processes(self, older_than_ms: int, *, watermark: int | None = None) -> int:
        """Delete terminal processes (with their events and grants) last written before the
        cutoff; running ones are never pruned. A change-feed reader passes its cursor as
        `watermark`: a terminal change it has not read yet is kept for it."""
        with self.db.tx() as conn:
            return prune_in(conn, older_than_ms, watermark)
