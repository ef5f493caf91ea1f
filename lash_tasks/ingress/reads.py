"""Read views shared by the Python client, the CLI and the HTTP gateway: a session, one
input, a list of sessions, the fleet's backlog. Each answers a `lash_tasks.views` model."""

from __future__ import annotations

from lash_tasks.errors import NotFound, ValidationError
from lash_tasks.machine import TurnState
from lash_tasks.machine.ids import check_session_id
from lash_tasks.store.records import InputState, SessionActivity
from lash_tasks.store.store import Store
from lash_tasks.views import (
    ActiveTurnView,
    FleetStatus,
    InputView,
    LeaseView,
    ProcessView,
    SessionSummary,
    SessionView,
)

MAX_SESSION_LIST = 1000
ACTIVITIES = ("running", "waiting", "idle")


def session_view(store: Store, session_id: str) -> SessionView:
    """What a session looks like now: revision, provider, model, tools, usage, the active
    turn (claimed inputs, steps, error), inputs still pending, lease, transcript."""
    loaded = store.sessions.load(session_id)
    owner, fencing, expires = store.leases.state(session_id)
    policy = loaded.record.policy
    turn = loaded.active_turn
    return SessionView(
        session_id=session_id,
        head_revision=loaded.record.head_revision,
        provider=policy.provider if policy else None,
        model=policy.model.id if policy else None,
        tools=list(policy.tools) if policy and policy.tools is not None else None,
        usage=loaded.record.usage.to_json(),
        active_turn=_active_turn(store, session_id, turn) if turn is not None else None,
        pending_inputs=[i.input_id for i in store.inputs.list_pending(session_id)],
        lease=LeaseView(owner=owner, fencing_token=fencing, expires_at=expires),
        parent_session_id=loaded.record.parent_session_id,
        processes=[
            ProcessView(
                process_id=p.process_id,
                kind=p.kind,
                status=p.status.value,
                disposition=p.disposition.value,
            )
            for p in store.processes.for_session(session_id)
        ],
        children=[c.session_id for c in store.sessions.children(session_id)],
        transcript=[
            {"node_id": n.node_id, "kind": n.kind, **dict(n.payload)}
            for n in loaded.graph.active_path()
        ],
    )


def _active_turn(store: Store, session_id: str, turn: TurnState) -> ActiveTurnView:
    claimed = list(turn.input_ids)
    if turn.input_claim is not None:
        steer = store.inputs.accepted(session_id, turn.input_claim.claim_id)
        claimed += [i.input_id for i in steer if i.input_id not in claimed]
    error = turn.last_error
    return ActiveTurnView(
        turn_id=turn.turn_id,
        steps_committed=turn.step_index,
        attempts=turn.attempts,
        cancel_requested=turn.cancel_requested,
        claimed_input_ids=claimed,
        batch_ids=list(turn.batch_ids),
        error=f"{error.get('code')}: {error.get('message')}" if error else None,
    )


def input_view(store: Store, session_id: str, input_id: str) -> InputView:
    """One input of the session; `NotFound` if it has none of that id (or vacuum took it)."""
    check_session_id(session_id)
    store.sessions.record(session_id)  # SessionNotFound first, for a clear message
    row = store.inputs.get(session_id, input_id)
    if row is None:
        raise NotFound(
            f"input {input_id!r} of session {session_id!r} does not exist",
            session_id=session_id,
            input_id=input_id,
        )
    outcome = None
    if row.turn_id is not None and row.state == InputState.COMPLETED:
        outcome = (store.turns.result(session_id, row.turn_id) or {}).get("outcome")
    body = row.input
    reply = body.get("reply_to")
    return InputView(
        session_id=session_id,
        input_id=row.input_id,
        state=row.state,
        ingress=row.ingress,
        source_key=row.source_key,
        text=str(body.get("text", "")),
        attachments=[str(a) for a in body.get("attachments", ())],
        branch_from=body.get("branch_from"),
        reply_to=dict(reply) if isinstance(reply, dict) else None,
        turn_id=row.turn_id,
        enqueued_at=row.enqueued_at,
        updated_at=row.updated_at,
        outcome=outcome,
    )


def session_list(
    store: Store,
    *,
    activity: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[SessionSummary]:
    """Sessions in id order, `limit` at most (1..1000), after the id `after`."""
    if activity is not None and activity not in ACTIVITIES:
        raise ValidationError(
            f"state: {activity!r} is not one of: {', '.join(ACTIVITIES)}", field="state"
        )
    if not 1 <= limit <= MAX_SESSION_LIST:
        raise ValidationError(
            f"limit: must be between 1 and {MAX_SESSION_LIST}, got {limit}", field="limit"
        )
    if after is not None:
        check_session_id(after)
    chosen: SessionActivity | None = activity  # type: ignore[assignment]
    rows = store.sessions.summaries(activity=chosen, limit=limit, after=after)
    return [SessionSummary.model_validate(r, from_attributes=True) for r in rows]


def fleet_status(store: Store) -> FleetStatus:
    counts = store.maintenance.fleet_counts()
    return FleetStatus(
        runnable_without_lease=len(store.maintenance.runnable_sessions()),
        processes=store.processes.counts(),
        runnable_processes_without_lease=len(store.processes.runnable()),
        **counts,
    )


def session_tree(store: Store, session_id: str, depth: int = 0, limit: int = 8) -> list[str]:
    """The session and its subagents' child sessions, indented by generation."""
    lines = ["  " * depth + session_id]
    if depth < limit:
        for child in store.sessions.children(session_id):
            lines.extend(session_tree(store, child.session_id, depth + 1, limit))
    return lines
