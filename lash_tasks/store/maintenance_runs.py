"""Maintenance bookkeeping: one row per (job, scheduled slot), and process pruning."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from lash_tasks.store import schema as t
from lash_tasks.store.base import SqlStoreBase

TERMINAL_PROCESS_STATES = ("completed", "failed", "cancelled", "abandoned")


class MaintenanceRunsMixin(SqlStoreBase):
    def claim_maintenance_slot(self, job: str, slot: str) -> bool:
        """True for the first claimant of (job, slot); two beats firing the same slot get one."""
        try:
            with self.tx() as conn:
                self.dialect.lock_key(conn, f"maintenance:{job}:{slot}")
                exists = conn.execute(
                    select(t.maintenance_runs.c.job).where(
                        t.maintenance_runs.c.job == job, t.maintenance_runs.c.slot == slot
                    )
                ).first()
                if exists is not None:
                    return False
                conn.execute(
                    insert(t.maintenance_runs).values(
                        job=job, slot=slot, started_at=self.now_ms(conn)
                    )
                )
                return True
        except IntegrityError:
            return False

    def finish_maintenance(self, job: str, slot: str, report: dict[str, Any]) -> None:
        with self.tx() as conn:
            conn.execute(
                update(t.maintenance_runs)
                .where(t.maintenance_runs.c.job == job, t.maintenance_runs.c.slot == slot)
                .values(finished_at=self.now_ms(conn), report=report)
            )

    def last_maintenance_start(self, job: str, before_slot: str) -> int | None:
        """Start time of the latest earlier run of `job` (for "changed since last run")."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.max(t.maintenance_runs.c.started_at)).where(
                    t.maintenance_runs.c.job == job,
                    t.maintenance_runs.c.slot != before_slot,
                    t.maintenance_runs.c.finished_at.is_not(None),
                )
            ).scalar_one()
            return int(value) if value is not None else None

    def maintenance_runs(self, job: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.maintenance_runs)
                .where(t.maintenance_runs.c.job == job)
                .order_by(t.maintenance_runs.c.started_at)
            )
            return [dict(r._mapping) for r in rows]

    def prune_terminal_processes(self, older_than_ms: int) -> int:
        """Delete terminal processes (and their events) last updated before the cutoff."""
        p, e = t.processes, t.process_events
        with self.tx() as conn:
            doomed = select(p.c.process_id).where(
                p.c.status.in_(TERMINAL_PROCESS_STATES), p.c.updated_at < older_than_ms
            )
            conn.execute(delete(e).where(e.c.process_id.in_(doomed)))
            result = conn.execute(
                delete(p).where(
                    p.c.status.in_(TERMINAL_PROCESS_STATES), p.c.updated_at < older_than_ms
                )
            )
            return int(result.rowcount)

    def db_now_ms(self) -> int:
        with self.engine.connect() as conn:
            return self.now_ms(conn)
