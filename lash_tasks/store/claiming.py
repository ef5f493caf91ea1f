"""Claims: the one way a worker takes a session's waiting inputs or queued work.

A claim stamps rows of one table with a claim id, a claim token and the lease generation
(fencing token) that took them. It is live while its generation is the session's live lease
generation, or while the session's active turn holds it (the turn continues across leases).
Claims have no timers: a claim from a dead generation is simply claimable again.
`Inputs` and `WorkQueue` each describe their table with a `ClaimTable` and share the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, false, or_, update

from lash_tasks.errors import StaleClaim
from lash_tasks.machine import ClaimCompletion, Fence
from lash_tasks.store.database import Database


@dataclass(frozen=True)
class ClaimTable:
    """Where one kind of claim lives."""

    table: Table
    key: str  # the column the claim UPDATE addresses rows by
    claimed_state: str
    turn_claim: str  # the column of the active turn naming its claim on this table
    id_prefix: str  # claim ids read "<prefix>:<fencing token>:<random>"


@dataclass(frozen=True)
class NewClaim:
    claim_id: str
    claim_token: str
    generation: int


def live_claim_filter(
    db: Database, conn: Connection, claims: ClaimTable, session_id: str, now: int
) -> ColumnElement[bool]:
    """SQL: the row is under a live claim (of the live lease generation or the active turn)."""
    generation = db.live_generation(conn, session_id, now)
    active = db.active_turn_row(conn, session_id)
    turn_claim = None if active is None else getattr(active, claims.turn_claim)
    return live_claim_clause(claims, generation, turn_claim)


def live_claim_clause(
    claims: ClaimTable, generation: int | None, turn_claim: str | None
) -> ColumnElement[bool]:
    """`live_claim_filter` when the caller knows the live generation and the active turn's
    claim (a step that has just taken the lease of a session with no turn running)."""
    c = claims.table.c
    clauses: list[ColumnElement[bool]] = []
    if generation is not None:
        clauses.append(c.claim_generation == generation)
    if turn_claim is not None:
        clauses.append(c.claim_id == turn_claim)
    if not clauses:
        return false()
    # An unclaimed row has no token; testing it first keeps its NULL generation from
    # making the whole filter unknown (and `~filter` with it).
    return and_(c.claim_token.is_not(None), or_(*clauses))


def take(
    conn: Connection, claims: ClaimTable, fence: Fence, keys: Sequence[Any], **values: Any
) -> NewClaim:
    """Stamp the rows addressed by `keys` with a new claim of `fence`'s generation."""
    claim = NewClaim(
        # Random, not built from a row's sequence number: SQLite reuses a vacuumed rowid.
        claim_id=f"{claims.id_prefix}:{fence.fencing_token}:{uuid.uuid4().hex[:16]}",
        claim_token=uuid.uuid4().hex,
        generation=fence.fencing_token,
    )
    table = claims.table
    conn.execute(
        update(table)
        .where(table.c[claims.key].in_(list(keys)))
        .values(
            state=claims.claimed_state,
            claim_id=claim.claim_id,
            claim_token=claim.claim_token,
            claim_generation=claim.generation,
            **values,
        )
    )
    return claim


def settle(
    conn: Connection,
    claims: ClaimTable,
    session_id: str,
    completion: ClaimCompletion,
    generation: int | None,
    from_states: Sequence[str],
    values: dict[str, Any],
) -> None:
    """Settle one claim with `values`, or raise `StaleClaim` if it is no longer held.
    `generation=None`: the claim is the active turn's, held whatever the generation."""
    c = claims.table.c
    conditions = [
        c.session_id == session_id,
        c.claim_id == completion.claim_id,
        c.claim_token == completion.claim_token,
        c.state.in_(list(from_states)),
    ]
    if generation is not None:
        conditions.append(c.claim_generation == generation)
    result = conn.execute(update(claims.table).where(*conditions).values(**values))
    if result.rowcount == 0:
        raise StaleClaim(
            f"claim {completion.claim_id!r} is no longer held by this lease generation",
            session_id=session_id,
            claim_id=completion.claim_id,
        )
