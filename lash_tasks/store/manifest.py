"""Attachment manifest rows: write-ahead intents, commit stamps, and GC queries.

A row says "session S references attachment A". It is written as an uncommitted *intent* before
the blob's bytes land, and stamped `committed_at` by the commit that uses it (see
`Commits._stamp_attachments`). Garbage collection treats as live every committed row and
every intent that is not *dead*: dead means uncommitted, older than the cutoff, and owned by
something provably finished — a later, different turn of the same session committed after the
intent; the owning process is gone or terminal; the owning input and every other input of its
session are terminal (or vacuumed); or there is no owner, so age alone decides.
The three GC queries share one definition of "dead" so that they can never disagree.

An input owns the rows of the attachments it names from its enqueue until the commit that
writes its message into the graph stamps them. Any open input of the session keeps such rows
alive, not only the owner: two pending inputs may name the same attachment, a row has one
owner, and cancelling the later one must not expose the earlier one's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from lash_tasks.attachments.values import OwnerKind, check_media_type
from lash_tasks.errors import UnknownAttachment, ValidationError
from lash_tasks.machine.ids import check_attachment_id, check_session_id
from lash_tasks.store import schema as t
from lash_tasks.store.database import Database
from lash_tasks.store.dialects import Dialect
from lash_tasks.store.records import TERMINAL_INPUT_STATES

OWNER_KINDS: tuple[str, ...] = ("turn", "process", "input")
TERMINAL_PROCESS_STATUSES = ("completed", "failed", "cancelled", "abandoned")

_m = t.attachment_manifest


@dataclass(frozen=True)
class ManifestRow:
    session_id: str
    attachment_id: str
    uri: str
    intent_at: int
    committed_at: int | None
    owner_kind: str | None
    owner_id: str | None
    media_type: str | None = None

    @property
    def committed(self) -> bool:
        return self.committed_at is not None


class Manifest:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def durability_tier(self) -> str:
        return self.db.durability_tier

    def record_intent(
        self,
        session_id: str,
        attachment_id: str,
        uri: str,
        owner_kind: OwnerKind | None = None,
        owner_id: str | None = None,
        media_type: str | None = None,
    ) -> None:
        """Record that `session_id` is about to reference `attachment_id` (write-ahead).

        A new row, or an uncommitted row refreshed to now, to the new owner and media type —
        the latest writer is the one whose commit must stamp it. A committed row is left as
        it is. Raises `SessionNotFound` for a missing (e.g. deleted) session, so that no
        intent can outlive its session's deletion.
        """
        check_session_id(session_id)
        check_attachment_id(attachment_id)
        _check_owner(owner_kind, owner_id)
        if media_type is not None:
            check_media_type(media_type)
        if not uri or len(uri) > 400:
            raise ValidationError("attachment uri must be 1-400 characters")
        with self.db.tx() as conn:
            # Serialises against delete_session, which takes the same lock.
            self.db.lock_session(conn, session_id)
            self.db.require_session(conn, session_id)
            now = self.db.now_ms(conn)
            values = {
                "session_id": session_id,
                "attachment_id": attachment_id,
                "uri": uri,
                "intent_at": now,
                "committed_at": None,
                "owner_kind": owner_kind,
                "owner_id": owner_id,
                "media_type": media_type,
            }
            conn.execute(self._upsert_intent(values))

    def _upsert_intent(self, values: dict[str, Any]) -> Any:
        # Both dialects speak INSERT .. ON CONFLICT; SQLAlchemy spells it per dialect.
        insert = postgresql.insert if self.db.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(_m).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=[_m.c.session_id, _m.c.attachment_id],
            set_={
                "intent_at": stmt.excluded.intent_at,
                "owner_kind": stmt.excluded.owner_kind,
                "owner_id": stmt.excluded.owner_id,
                "media_type": func.coalesce(stmt.excluded.media_type, _m.c.media_type),
            },
            where=_m.c.committed_at.is_(None),
        )

    def holds_ref(self, session_id: str, attachment_id: str) -> bool:
        """Whether the session has any manifest row (intent or committed) for the attachment."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_m.c.attachment_id).where(
                    _m.c.session_id == session_id, _m.c.attachment_id == attachment_id
                )
            ).first()
            return row is not None

    def row(self, session_id: str, attachment_id: str) -> ManifestRow | None:
        """The session's row for the attachment, or None if it holds none."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_m).where(_m.c.session_id == session_id, _m.c.attachment_id == attachment_id)
            ).first()
            return ManifestRow(**row._asdict()) if row is not None else None

    def forget_ref(self, session_id: str, attachment_id: str) -> bool:
        """Drop this session's row only; other sessions sharing the bytes keep theirs."""
        with self.db.tx() as conn:
            result = conn.execute(
                delete(_m).where(_m.c.session_id == session_id, _m.c.attachment_id == attachment_id)
            )
            return result.rowcount > 0

    def rows(self, session_id: str) -> list[ManifestRow]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(_m).where(_m.c.session_id == session_id).order_by(_m.c.attachment_id)
            )
            return [ManifestRow(**row._asdict()) for row in rows]

    def has_live_ref(self, attachment_id: str, cutoff_ms: int) -> bool:
        """Whether any session still needs the attachment (committed, or an intent not dead)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_m.c.attachment_id)
                .where(_m.c.attachment_id == attachment_id, _live(cutoff_ms))
                .limit(1)
            ).first()
            return row is not None

    def live_attachment_ids(self, cutoff_ms: int) -> set[str]:
        """The GC root set: every attachment id with a live row in any session."""
        with self.db.read() as conn:
            rows = conn.execute(select(_m.c.attachment_id).where(_live(cutoff_ms)).distinct())
            return {row.attachment_id for row in rows}

    def forget_dead_intents(self, cutoff_ms: int) -> int:
        """Delete dead intents in ONE conditional statement; returns how many.

        Never read-then-delete: the owner's liveness is re-evaluated by the database at the
        moment each row is deleted, so an intent refreshed or stamped meanwhile survives.
        """
        with self.db.tx() as conn:
            return int(conn.execute(delete(_m).where(_dead(cutoff_ms))).rowcount)

    def now_ms(self) -> int:
        """The database clock that `intent_at` and `committed_at` are measured on."""
        return self.db.db_now_ms()


def stamp_owned_intents(
    conn: Connection, session_id: str, owner_kind: OwnerKind, owner_id: str, now: int
) -> int:
    """Commit every uncommitted row of `session_id` owned by `(owner_kind, owner_id)`.

    For use inside another transaction (a process completing, say) so that the stamp lands
    atomically with it. Update only: a row GC already forgot is never resurrected.
    """
    _check_owner(owner_kind, owner_id)
    result = conn.execute(
        update(_m)
        .where(
            _m.c.session_id == session_id,
            _m.c.owner_kind == owner_kind,
            _m.c.owner_id == owner_id,
            _m.c.committed_at.is_(None),
        )
        .values(committed_at=now)
    )
    return int(result.rowcount)


def input_attachment_ids(body: Mapping[str, Any]) -> list[str]:
    """The attachment ids an input body names, checked; `ValidationError` if malformed."""
    named = body.get("attachments") or []
    if not isinstance(named, list | tuple):
        raise ValidationError("an input's attachments must be a list of attachment ids")
    return [check_attachment_id(a) for a in named]


def hold_input_attachments(
    conn: Connection,
    dialect: Dialect,
    session_id: str,
    input_id: str,
    attachment_ids: Sequence[str],
    now: int,
) -> None:
    """Inside the enqueue transaction: the input takes ownership of its attachments' rows.

    Every id (see `input_attachment_ids`) must already have a row of this session (put
    through the session's attachment facade), else `UnknownAttachment` names the first
    missing one and the caller's transaction writes nothing. Uncommitted rows are refreshed
    to now and owned by the input; committed rows are already safe and stay as they are.
    """
    ids = list(dict.fromkeys(attachment_ids))
    if not ids:
        return
    # Locking the rows first: a garbage collector deleting one of them either finished before
    # (the id is missing here) or waits and then sees a live row.
    held = {
        row.attachment_id
        for row in conn.execute(
            dialect.for_update(
                select(_m.c.attachment_id).where(
                    _m.c.session_id == session_id, _m.c.attachment_id.in_(ids)
                )
            )
        )
    }
    missing = [a for a in ids if a not in held]
    if missing:
        raise UnknownAttachment(
            f"session {session_id!r} holds no attachment {missing[0]} "
            "(put it for this session before naming it in an input)",
            session_id=session_id,
            attachment_ids=missing,
        )
    conn.execute(
        update(_m)
        .where(
            _m.c.session_id == session_id,
            _m.c.attachment_id.in_(ids),
            _m.c.committed_at.is_(None),
        )
        .values(owner_kind="input", owner_id=input_id, intent_at=now)
    )


def _check_owner(owner_kind: object, owner_id: object) -> None:
    if owner_kind is None and owner_id is None:
        return
    if owner_kind not in OWNER_KINDS:
        raise ValidationError(f"attachment owner kind must be one of {OWNER_KINDS} or None")
    if not isinstance(owner_id, str) or not owner_id:
        raise ValidationError("an attachment owner kind needs a non-empty owner id")


def _owner_dead() -> ColumnElement[bool]:
    tc = t.turn_commits
    p = t.processes
    later_turn_committed = exists(
        select(tc.c.turn_id)
        .where(
            tc.c.session_id == _m.c.session_id,
            tc.c.turn_id != _m.c.owner_id,
            tc.c.committed_at > _m.c.intent_at,
        )
        .correlate(_m)
    )
    # Unknown statuses count as alive: when unsure, keep the bytes.
    process_alive = exists(
        select(p.c.process_id)
        .where(
            p.c.process_id == _m.c.owner_id,
            p.c.status.not_in(TERMINAL_PROCESS_STATUSES),
        )
        .correlate(_m)
    )
    pi = t.pending_inputs
    session_has_open_input = exists(
        select(pi.c.input_id)
        .where(
            pi.c.session_id == _m.c.session_id,
            pi.c.state.not_in([str(s) for s in TERMINAL_INPUT_STATES]),
        )
        .correlate(_m)
    )
    return or_(
        _m.c.owner_kind.is_(None),
        _m.c.owner_id.is_(None),
        and_(_m.c.owner_kind == "turn", later_turn_committed),
        and_(_m.c.owner_kind == "process", not_(process_alive)),
        and_(_m.c.owner_kind == "input", not_(session_has_open_input)),
    )


def _dead(cutoff_ms: int) -> ColumnElement[bool]:
    return and_(_m.c.committed_at.is_(None), _m.c.intent_at < cutoff_ms, _owner_dead())


def _live(cutoff_ms: int) -> ColumnElement[bool]:
    # Spelled out rather than not_(_dead(...)) so that no NULL can make a row neither.
    return or_(
        _m.c.committed_at.is_not(None),
        _m.c.intent_at >= cutoff_ms,
        not_(_owner_dead()),
    )
