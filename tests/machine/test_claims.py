"""Pure tests of the queued-work claim rules."""

from __future__ import annotations

from lash_tasks.machine.claims import (
    Candidate,
    select_boundary_work_prefix,
    select_leading_command,
    select_turn_work_prefix,
)

CMD = Candidate("session_command", "exclusive", None)
EXCL = Candidate("turn_work", "exclusive", None)


def join(key: str | None = "m") -> Candidate:
    return Candidate("turn_work", "join", key)


def test_leading_command_is_taken_alone_and_only_at_the_head() -> None:
    """select_leading_command is 1 iff the head is a session command, else 0."""
    assert select_leading_command([CMD, CMD, EXCL]) == 1
    assert select_leading_command([EXCL, CMD]) == 0
    assert select_leading_command([]) == 0


def test_turn_work_waits_behind_a_command() -> None:
    """No turn work is selected while a session command leads the queue."""
    assert select_turn_work_prefix([CMD, EXCL, join()], 64) == 0


def test_exclusive_turn_work_is_taken_alone() -> None:
    """An exclusive head is claimed alone, even when joinable work follows."""
    assert select_turn_work_prefix([EXCL, EXCL], 64) == 1
    assert select_turn_work_prefix([EXCL, join(), join()], 64) == 1


def test_join_run_extends_over_the_same_merge_key_only() -> None:
    """A join head takes following join batches with the same merge key, stopping at anything
    else (other key, exclusive, command)."""
    assert select_turn_work_prefix([join(), join(), join()], 64) == 3
    assert select_turn_work_prefix([join(), join(), join("other"), join()], 64) == 2
    assert select_turn_work_prefix([join(), EXCL, join()], 64) == 1
    assert select_turn_work_prefix([join(), CMD, join()], 64) == 1
    assert select_turn_work_prefix([join(None), join(None), join("m")], 64) == 2


def test_join_run_respects_max_batches() -> None:
    """The prefix never exceeds max_batches; a non-positive max selects nothing."""
    run = [join() for _ in range(10)]
    assert select_turn_work_prefix(run, 4) == 4
    assert select_turn_work_prefix(run, 1) == 1
    assert select_turn_work_prefix(run, 0) == 0
    assert select_turn_work_prefix([], 4) == 0


BOUNDARY = Candidate("turn_work", "exclusive", None, "earliest_safe_boundary")


def boundary_join(key: str | None = "m") -> Candidate:
    return Candidate("turn_work", "join", key, "earliest_safe_boundary")


def test_a_running_turn_takes_only_boundary_work_at_the_head() -> None:
    """At a step boundary the head must be earliest_safe_boundary turn work; work queued for
    after the turn, or a command, keeps everything behind it waiting."""
    assert select_boundary_work_prefix([BOUNDARY, BOUNDARY], 64) == 1
    assert select_boundary_work_prefix([EXCL, BOUNDARY], 64) == 0
    assert select_boundary_work_prefix([CMD, BOUNDARY], 64) == 0
    assert select_boundary_work_prefix([], 64) == 0


def test_boundary_join_batches_group_by_delivery_policy_and_merge_key() -> None:
    """Join batches extend a claim only while delivery policy and merge key match."""
    assert select_boundary_work_prefix([boundary_join(), boundary_join(), join()], 64) == 2
    assert select_boundary_work_prefix([boundary_join(), boundary_join("n")], 64) == 1
    assert select_turn_work_prefix([join(), boundary_join()], 64) == 1
