"""`Processes`: the process registry (DESIGN §6) — registration, event log, change feed,
process lease, completion.

Every write to a process takes its key lock (`process:{id}`) first, then bumps the change
clock, so the feed's sequence is commit order. The lease works like the session lease: a
fencing token that only goes up, re-entry by the same incarnation, and immediate takeover
from a holder whose heartbeat expired. Completion is one transaction: fence, terminal event,
the process's attachment intents stamped, lease cleared, and the wake enqueued on the wake
target (source key `process:{id}:event:{seq}:wake`), so a retried completion wakes once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    func,
    insert,
    select,
    update,
)

from lash_tasks.errors import (
    LeaseLost,
    ProcessEventConflict,
    ProcessFinished,
    ProcessNotFound,
    RegistrationConflict,
    SessionNotFound,
    ValidationError,
)
from lash_tasks.machine import QueuedWorkDraft, stable_hash
from lash_tasks.machine.processes import (
    TERMINAL_STATUSES,
    Disposition,
    LeaseView,
    ProcessRegistration,
    ProcessStatus,
    check_process_id,
    wake_payload,
    wake_source_key,
)
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.heartbeats import holder_deadline
from lash_tasks.store.manifest import stamp_owned_intents
from lash_tasks.store.process_records import (
    Completion,
    ProcessBusy,
    ProcessChanges,
    ProcessEvent,
    ProcessFence,
    ProcessLease,
    ProcessRecord,
    TerminalStatus,
)
from lash_tasks.store.work_queue import enqueue_batch

log = logging.getLogger(__name__)

_p = t.processes
_e = t.process_events
_g = t.process_grants
_clock = t.process_change_clock
DEFAULT_TTL_MS = 30_000
MAX_EVENT_TYPE = 32
# Event types only completion writes: a terminal event without the lease is refused.
TERMINAL_EVENT = "terminal"


class Processes:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ── registration and reads ───────────────────────────────────────────────────────────

    def register(self, registration: ProcessRegistration) -> tuple[ProcessRecord, bool]:
        """Register a process: (record, created). The same id with the same registration
        returns the existing row; a different registration raises `RegistrationConflict`.
        The originating session (and the wake target) must exist; both get a handle grant."""
        reg = registration
        digest = reg.registration_hash
        with self.db.tx() as conn:
            self.db.lock_key(conn, _key(reg.process_id))
            existing = _row(conn, reg.process_id)
            if existing is not None:
                if existing.registration_hash != digest:
                    raise RegistrationConflict(
                        f"process {reg.process_id!r} is registered with a different registration",
                        process_id=reg.process_id,
                    )
                return decode_process(existing), False
            for session_id in {reg.session_id, reg.wake_session_id} - {None}:
                assert session_id is not None
                if not _session_exists(conn, session_id):
                    raise SessionNotFound(
                        f"session {session_id!r} does not exist", session_id=session_id
                    )
            now = self.db.now_ms(conn)
            conn.execute(
                insert(_p).values(
                    process_id=reg.process_id,
                    session_id=reg.session_id,
                    wake_session_id=reg.wake_session_id,
                    kind=reg.kind,
                    disposition=reg.disposition.value,
                    registration_hash=digest,
                    registration=reg.to_json(),
                    status=ProcessStatus.RUNNING.value,
                    fencing_token=0,
                    change_seq=next_change_seq(self.db, conn),
                    created_at=now,
                    updated_at=now,
                )
            )
            for session_id in {reg.session_id, reg.wake_session_id} - {None}:
                conn.execute(
                    insert(_g).values(
                        process_id=reg.process_id, session_id=session_id, granted_at=now
                    )
                )
            _append(conn, reg.process_id, "registered", {"kind": reg.kind}, None, now)
            return decode_process(_row(conn, reg.process_id)), True

    def get(self, process_id: str) -> ProcessRecord | None:
        check_process_id(process_id)
        with self.db.read() as conn:
            row = _row(conn, process_id)
            return None if row is None else decode_process(row)

    def require(self, process_id: str) -> ProcessRecord:
        record = self.get(process_id)
        if record is None:
            raise ProcessNotFound(f"process {process_id!r} does not exist", process_id=process_id)
        return record

    def for_session(self, session_id: str) -> list[ProcessRecord]:
        """Processes the session started or holds a grant on, oldest first."""
        with self.db.read() as conn:
            granted = select(_g.c.process_id).where(_g.c.session_id == session_id)
            rows = conn.execute(
                select(_p)
                .where((_p.c.session_id == session_id) | _p.c.process_id.in_(granted))
                .order_by(_p.c.created_at, _p.c.process_id)
            )
            return [decode_process(r) for r in rows]

    def grants(self, process_id: str) -> list[str]:
        """The sessions holding a handle grant on the process."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_g.c.session_id)
                .where(_g.c.process_id == process_id)
                .order_by(_g.c.session_id)
            )
            return [r.session_id for r in rows]

    def counts(self) -> dict[str, int]:
        """Processes per status, every status present (0 when none)."""
        with self.db.read() as conn:
            rows = conn.execute(select(_p.c.status, func.count()).group_by(_p.c.status)).all()
        counts = {s.value: 0 for s in ProcessStatus}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    # ── events and the change feed ───────────────────────────────────────────────────────

    def append_event(
        self,
        process_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> ProcessEvent:
        """Append a non-terminal event. With a key, the same key and payload return the
        existing event; the same key with another payload raises `ProcessEventConflict`.
        Terminal events come only from `complete`; a terminal process takes no events."""
        if not event_type or len(event_type) > MAX_EVENT_TYPE or event_type == TERMINAL_EVENT:
            raise ValidationError(
                f"process event type {event_type!r:.40} is not allowed here", field="event_type"
            )
        if idempotency_key is not None and not idempotency_key:
            raise ValidationError("an idempotency key must not be empty", field="idempotency_key")
        with self.db.tx() as conn:
            self.db.lock_key(conn, _key(process_id))
            row = _require_row(conn, process_id)
            if idempotency_key is not None:
                found = _keyed(conn, process_id, idempotency_key)
                if found is not None:
                    return _same_or_conflict(found, event_type, payload)
            if ProcessStatus(row.status).terminal:
                raise ProcessFinished(
                    f"process {process_id!r} is {row.status}: it takes no more events",
                    process_id=process_id,
                )
            now = self.db.now_ms(conn)
            event = _append(conn, process_id, event_type, payload, idempotency_key, now)
            _touch(self.db, conn, process_id, now)
            return event

    def events_after(self, process_id: str, after_seq: int = 0) -> list[ProcessEvent]:
        """The process's events with seq > `after_seq`, in order: the truth of what happened."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_e)
                .where(_e.c.process_id == process_id, _e.c.seq > after_seq)
                .order_by(_e.c.seq)
            )
            return [_decode_event(r) for r in rows]

    def changed_since(self, cursor: int = 0, limit: int = 100) -> ProcessChanges:
        """Processes written after `cursor`, in change order; pass back `cursor` for more."""
        if cursor < 0 or limit <= 0:
            raise ValidationError("change feed cursor must be >= 0 and limit > 0")
        with self.db.read() as conn:
            rows = conn.execute(
                select(_p).where(_p.c.change_seq > cursor).order_by(_p.c.change_seq).limit(limit)
            ).all()
        records = tuple(decode_process(r) for r in rows)
        return ProcessChanges(records, records[-1].change_seq if records else cursor)

    # ── the process lease ────────────────────────────────────────────────────────────────

    def try_claim(
        self, process_id: str, owner_id: str, incarnation_id: str, ttl_ms: int = DEFAULT_TTL_MS
    ) -> ProcessLease | ProcessBusy:
        """Take the process lease, re-enter it, or report a live holder. A holder whose
        heartbeat expired is provably dead: its lease is taken at once (`found=dead_holder`).
        A terminal process can still be claimed (the caller's recovery sees `done`)."""
        check_process_id(process_id)
        if not owner_id or not incarnation_id:
            raise ValidationError("lease owner id and incarnation id must not be empty")
        if ttl_ms <= 0:
            raise ValidationError("lease ttl must be positive")
        with self.db.tx() as conn:
            self.db.lock_key(conn, _key(process_id))
            row = _require_row(conn, process_id)
            now = self.db.now_ms(conn)
            found = _lease_view(conn, row, owner_id, incarnation_id, now)
            if found == "live_other":
                deadline = holder_deadline(conn, row.lease_incarnation_id)
                retry_at = row.lease_expires_at
                if deadline is not None:
                    retry_at = min(retry_at, deadline)
                return ProcessBusy(process_id, row.lease_owner, max(0, retry_at - now))
            if found == "mine":
                token, fencing = row.lease_token, int(row.fencing_token)
                values: dict[str, Any] = {"lease_expires_at": now + ttl_ms}
            else:
                token, fencing = uuid.uuid4().hex, int(row.fencing_token) + 1
                values = {
                    "lease_owner": owner_id,
                    "lease_incarnation_id": incarnation_id,
                    "lease_token": token,
                    "fencing_token": fencing,
                    "lease_claimed_at": now,
                    "lease_expires_at": now + ttl_ms,
                }
            conn.execute(update(_p).where(_p.c.process_id == process_id).values(**values))
            record = decode_process(_row(conn, process_id))
            return ProcessLease(
                process_id,
                owner_id,
                incarnation_id,
                token,
                fencing,
                now + ttl_ms,
                found,
                record,
                previous_owner=row.lease_owner,
                previous_incarnation_id=row.lease_incarnation_id,
            )

    def renew(self, fence: ProcessFence, ttl_ms: int = DEFAULT_TTL_MS) -> int:
        """Extend a held process lease; a stale or expired fence raises `LeaseLost`."""
        with self.db.tx() as conn:
            now = self.db.now_ms(conn)
            result = conn.execute(
                update(_p)
                .where(_fenced(fence), _p.c.lease_expires_at > now)
                .values(lease_expires_at=now + ttl_ms)
            )
            if result.rowcount == 0:
                raise _lost(fence)
            return now + ttl_ms

    def release(self, fence: ProcessFence) -> bool:
        """Give the lease up. Idempotent; never clears a newer holder; the fence stays."""
        with self.db.tx() as conn:
            result = conn.execute(update(_p).where(_fenced(fence)).values(**_CLEARED))
            return result.rowcount > 0

    def mark_started(self, fence: ProcessFence) -> int:
        """Record `first_started` (once; the first value stays) under a live lease, before an
        owner_bound process runs: a later worker that finds it set knows it ran."""
        with self.db.tx() as conn:
            self.db.lock_key(conn, _key(fence.process_id))
            now = self.db.now_ms(conn)
            row = _check_fence(conn, fence, now)
            if row.first_started_at is not None:
                return int(row.first_started_at)
            conn.execute(
                update(_p)
                .where(_p.c.process_id == fence.process_id)
                .values(
                    first_started_at=now, updated_at=now, change_seq=next_change_seq(self.db, conn)
                )
            )
            _append(conn, fence.process_id, "first_started", {}, "first_started", now)
            return now

    # ── completion ───────────────────────────────────────────────────────────────────────

    def complete(
        self,
        fence: ProcessFence | None,
        process_id: str,
        status: TerminalStatus,
        result: Mapping[str, Any],
        idempotency_key: str,
        *,
        summary: str = "",
    ) -> Completion:
        """End the process in one transaction: the fence still holds, the terminal event is
        appended, its attachment intents are stamped, the lease cleared, and its wake target
        gets a `process_wake` batch. Completing again with the same key and result returns
        the first completion (`replayed`), with or without the lease, and wakes nobody again.

        `fence=None` is for externally owned processes only (their owner completes them
        without a lease); any other process needs the live lease (`LeaseLost`), and an
        externally owned one refuses a fence (`ValidationError`): the fleet never runs it.
        """
        if status not in TERMINAL_STATUSES:
            raise ValidationError(f"{status!r} is not a terminal status", field="status")
        if not idempotency_key:
            raise ValidationError("a completion needs an idempotency key", field="idempotency_key")
        payload = {"status": status, "result": dict(result), "summary": summary}
        with self.db.tx() as conn:
            self.db.lock_key(conn, _key(process_id))
            row = _require_row(conn, process_id)
            # Lock the wake target before writing anything (deleting a session locks it
            # and then clears process rows: the same order, so no deadlock).
            if row.wake_session_id is not None:
                self.db.lock_session(conn, row.wake_session_id)
                row = _require_row(conn, process_id)
            found = _keyed(conn, process_id, idempotency_key)
            if found is not None:
                event = _same_or_conflict(found, TERMINAL_EVENT, payload)
                return Completion(decode_process(row), event, True, None, None)
            if ProcessStatus(row.status).terminal:
                raise ProcessFinished(
                    f"process {process_id!r} is already {row.status}", process_id=process_id
                )
            now = self.db.now_ms(conn)
            if fence is None:
                if row.disposition != Disposition.EXTERNALLY_OWNED:
                    raise _lost(ProcessFence(process_id, "", "", int(row.fencing_token)))
            else:
                if fence.process_id != process_id:
                    raise ValidationError("the fence names another process", field="fence")
                if row.disposition == Disposition.EXTERNALLY_OWNED:
                    # The fleet never runs it, so no fleet lease may end it: only its owner.
                    raise ValidationError(
                        f"process {process_id!r} is externally owned: its owner completes it, "
                        "without a fence",
                        field="fence",
                    )
                _check_fence(conn, fence, now)
            event = _append(conn, process_id, TERMINAL_EVENT, payload, idempotency_key, now)
            if row.session_id is not None:
                stamp_owned_intents(conn, row.session_id, "process", process_id, now)
            conn.execute(
                update(_p)
                .where(_p.c.process_id == process_id)
                .values(
                    status=status,
                    result=payload,
                    updated_at=now,
                    change_seq=next_change_seq(self.db, conn),
                    **_CLEARED,
                )
            )
            wake = self._wake(conn, row, event, ProcessStatus(status), summary, now)
            return Completion(
                decode_process(_row(conn, process_id)),
                event,
                False,
                wake,
                row.wake_session_id if wake else None,
            )

    def _wake(
        self,
        conn: Connection,
        row: Row[Any],
        event: ProcessEvent,
        status: ProcessStatus,
        summary: str,
        now: int,
    ) -> str | None:
        target = row.wake_session_id
        if target is None:
            return None
        if not _session_exists(conn, target):
            log.info("process %s: wake target %s is gone; no wake", row.process_id, target)
            return None
        call_id = (row.registration.get("input") or {}).get("call_id")
        # Attachments the process put for the session its wake reaches (its own session).
        named = event.payload.get("result", {}).get("attachments") or ()
        attachments = tuple(a for a in named if isinstance(a, str))
        if target != row.session_id:
            attachments = ()
        draft = QueuedWorkDraft(
            source_key=wake_source_key(row.process_id, event.seq),
            work_class="turn_work",
            payloads=(
                wake_payload(
                    row.process_id, status, summary, call_id=call_id, attachments=attachments
                ),
            ),
            delivery_policy="earliest_safe_boundary",
        )
        return enqueue_batch(conn, target, draft, now).batch_id

    # ── for the sweeper and maintenance ──────────────────────────────────────────────────

    def runnable(self, limit: int = 1000) -> list[str]:
        """Running processes the fleet runs (not externally owned) whose lease is free or
        expired: what the sweeper pokes."""
        with self.db.read() as conn:
            now = self.db.now_ms(conn)
            rows = conn.execute(
                select(_p.c.process_id)
                .where(
                    _p.c.status == ProcessStatus.RUNNING.value,
                    _p.c.disposition != Disposition.EXTERNALLY_OWNED.value,
                    (_p.c.lease_owner.is_(None)) | (_p.c.lease_expires_at <= now),
                )
                .order_by(_p.c.change_seq)
                .limit(limit)
            )
            return [r.process_id for r in rows]


_CLEARED: dict[str, Any] = {
    "lease_owner": None,
    "lease_incarnation_id": None,
    "lease_token": None,
    "lease_claimed_at": None,
    "lease_expires_at": None,
}


def _key(process_id: str) -> str:
    return "process:" + process_id


def _row(conn: Connection, process_id: str) -> Any:
    return conn.execute(select(_p).where(_p.c.process_id == process_id)).first()


def _require_row(conn: Connection, process_id: str) -> Row[Any]:
    row = _row(conn, check_process_id(process_id))
    if row is None:
        raise ProcessNotFound(f"process {process_id!r} does not exist", process_id=process_id)
    return row  # type: ignore[no-any-return]


def _session_exists(conn: Connection, session_id: str) -> bool:
    found = conn.execute(
        select(t.sessions.c.session_id).where(t.sessions.c.session_id == session_id)
    ).first()
    return found is not None


def next_change_seq(db: Database, conn: Connection) -> int:
    """The next position in the change feed. The clock's lock is held to commit, so
    positions are handed out in commit order."""
    db.lock_key(conn, "process-change-clock")
    row = conn.execute(select(_clock.c.current_seq).where(_clock.c.singleton == 1)).first()
    if row is None:
        conn.execute(insert(_clock).values(singleton=1, current_seq=1))
        return 1
    seq = int(row.current_seq) + 1
    conn.execute(update(_clock).where(_clock.c.singleton == 1).values(current_seq=seq))
    return seq


def _touch(db: Database, conn: Connection, process_id: str, now: int) -> None:
    conn.execute(
        update(_p)
        .where(_p.c.process_id == process_id)
        .values(updated_at=now, change_seq=next_change_seq(db, conn))
    )


def _append(
    conn: Connection,
    process_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    idempotency_key: str | None,
    now: int,
) -> ProcessEvent:
    last = conn.execute(select(func.max(_e.c.seq)).where(_e.c.process_id == process_id)).scalar()
    seq = int(last or 0) + 1
    body = dict(payload)
    conn.execute(
        insert(_e).values(
            process_id=process_id,
            seq=seq,
            event_type=event_type,
            idempotency_key=idempotency_key,
            payload_hash=stable_hash({"type": event_type, "payload": body}),
            payload=body,
            occurred_at=now,
        )
    )
    return ProcessEvent(process_id, seq, event_type, idempotency_key, body, now)


def _keyed(conn: Connection, process_id: str, key: str) -> Any:
    return conn.execute(
        select(_e).where(_e.c.process_id == process_id, _e.c.idempotency_key == key)
    ).first()


def _same_or_conflict(row: Row[Any], event_type: str, payload: Mapping[str, Any]) -> ProcessEvent:
    digest = stable_hash({"type": event_type, "payload": dict(payload)})
    if row.payload_hash != digest:
        raise ProcessEventConflict(
            f"event key {row.idempotency_key!r} of process {row.process_id!r} was used for "
            "another event",
            process_id=row.process_id,
        )
    return _decode_event(row)


def _fenced(fence: ProcessFence) -> Any:
    return (
        (_p.c.process_id == fence.process_id)
        & (_p.c.lease_owner == fence.owner_id)
        & (_p.c.lease_token == fence.lease_token)
        & (_p.c.fencing_token == fence.fencing_token)
    )


def _check_fence(conn: Connection, fence: ProcessFence, now: int) -> Row[Any]:
    row = _require_row(conn, fence.process_id)
    if (
        row.lease_owner != fence.owner_id
        or row.lease_token != fence.lease_token
        or row.fencing_token != fence.fencing_token
        or row.lease_expires_at is None
        or row.lease_expires_at <= now
    ):
        raise _lost(fence)
    return row


def _lost(fence: ProcessFence) -> LeaseLost:
    return LeaseLost(
        f"lease on process {fence.process_id!r} with fencing token {fence.fencing_token} "
        "is no longer held",
        process_id=fence.process_id,
    )


def _lease_view(
    conn: Connection, row: Row[Any], owner_id: str, incarnation_id: str, now: int
) -> LeaseView:
    if row.lease_owner is None:
        return "free"
    deadline = holder_deadline(conn, row.lease_incarnation_id)
    dead = deadline is not None and deadline <= now
    if row.lease_owner == owner_id and row.lease_incarnation_id == incarnation_id:
        return "mine" if (row.lease_expires_at or 0) > now else "expired"
    if dead:
        return "dead_holder"
    if (row.lease_expires_at or 0) > now:
        return "live_other"
    return "expired"


def decode_process(row: Row[Any]) -> ProcessRecord:
    return ProcessRecord(
        process_id=row.process_id,
        kind=row.kind,
        disposition=Disposition(row.disposition),
        status=ProcessStatus(row.status),
        session_id=row.session_id,
        wake_session_id=row.wake_session_id,
        registration_hash=row.registration_hash,
        registration=dict(row.registration),
        result=dict(row.result) if row.result is not None else None,
        lease_owner=row.lease_owner,
        lease_incarnation_id=row.lease_incarnation_id,
        lease_expires_at=row.lease_expires_at,
        fencing_token=int(row.fencing_token),
        first_started_at=row.first_started_at,
        change_seq=int(row.change_seq),
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


def _decode_event(row: Row[Any]) -> ProcessEvent:
    return ProcessEvent(
        row.process_id,
        int(row.seq),
        row.event_type,
        row.idempotency_key,
        dict(row.payload),
        int(row.occurred_at),
    )
