"""Ids derived purely: turn ids never repeat within a session, node and replay keys are stable."""

from __future__ import annotations

from collections.abc import Sequence

from lash_tasks.machine import TurnOutcome
from lash_tasks.machine.ids import (
    derive_turn_id,
    effect_scope_id,
    llm_replay_key,
    node_id_for,
    steer_node_id,
    tool_replay_key,
)


def test_derive_turn_id_is_deterministic_and_order_independent() -> None:
    """The turn id depends on the kind, the turn number, the session's creation time and the
    set of claimed ids (not their order): the same claimed ids in a later turn get a new id."""

    def turn_id(kind: str, ids: Sequence[str], seq: int = 1, created: int = 100) -> str:
        return derive_turn_id(kind, ids, turn_seq=seq, session_created_at=created)

    a = turn_id("inputs", ["i1", "i2", "i3"])
    assert a == turn_id("inputs", ["i3", "i1", "i2"])
    assert a == turn_id("inputs", ("i2", "i3", "i1"))
    assert a.startswith("turn_")
    assert a != turn_id("inputs", ["i1", "i2"])
    assert a != turn_id("queue", ["i1", "i2", "i3"])
    assert a != turn_id("inputs", ["i1", "i2", "i3"], seq=2)
    assert a != turn_id("inputs", ["i1", "i2", "i3"], created=101)


def test_outcome_round_trips_through_json_and_node_ids_are_deterministic() -> None:
    """TurnOutcome survives JSON; node ids are a pure function of turn, step and position."""
    outcome = TurnOutcome("stopped", "provider_error", "x", True, {"code": "c"})
    assert TurnOutcome.from_json(outcome.to_json()) == outcome
    assert node_id_for("turn_a", 1, 2) == node_id_for("turn_a", 1, 2)
    assert node_id_for("turn_a", 1, 2) != node_id_for("turn_a", 2, 1)
    assert steer_node_id("turn_a", "in_1") != steer_node_id("turn_a", "in_2")


def test_replay_keys_name_the_session_turn_step_and_call() -> None:
    """Journal keys follow DESIGN §5: {session}:{turn}:{step}:{kind}:{seq} (+ the call id)."""
    assert effect_scope_id("s1", "turn_a") == "turn:s1:turn_a"
    assert llm_replay_key("s1", "turn_a", 2) == "s1:turn_a:2:llm_call:0"
    assert tool_replay_key("s1", "turn_a", 2, 1, "c9") == "s1:turn_a:2:tool_call:1:c9"
