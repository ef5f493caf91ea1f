"""Pure process rules: ids, the registration hash, the wake key, recovery by disposition."""

from __future__ import annotations

import pytest

from lash_tasks.errors import ValidationError
from lash_tasks.machine.processes import (
    Disposition,
    ProcessRegistration,
    ProcessStatus,
    check_process_id,
    child_session_id,
    recovery_decision,
    subagent_process_id,
    wake_source_key,
)

R, OB, E = Disposition.RERUNNABLE, Disposition.OWNER_BOUND, Disposition.EXTERNALLY_OWNED
RUNNING = ProcessStatus.RUNNING


def test_registration_hash_covers_every_field() -> None:
    """Equal registrations hash equal; changing any field changes the hash."""
    base = ProcessRegistration("p1", "tool", R, "s1", {"a": 1}, wake_session_id="s1")
    same = ProcessRegistration("p1", "tool", R, "s1", {"a": 1}, wake_session_id="s1")
    assert base.registration_hash == same.registration_hash
    variants = [
        ProcessRegistration("p2", "tool", R, "s1", {"a": 1}, wake_session_id="s1"),
        ProcessRegistration("p1", "subagent", R, "s1", {"a": 1}, wake_session_id="s1"),
        ProcessRegistration("p1", "tool", OB, "s1", {"a": 1}, wake_session_id="s1"),
        ProcessRegistration("p1", "tool", R, "s2", {"a": 1}, wake_session_id="s1"),
        ProcessRegistration("p1", "tool", R, "s1", {"a": 2}, wake_session_id="s1"),
        ProcessRegistration("p1", "tool", R, "s1", {"a": 1}),
    ]
    assert len({v.registration_hash for v in variants} | {base.registration_hash}) == 7


@pytest.mark.parametrize("bad", ["", "../x", "-x", "a" * 201, None, 7])
def test_bad_process_ids_are_refused(bad: object) -> None:
    """A process id is checked like a session id; the error names the field."""
    with pytest.raises(ValidationError) as caught:
        check_process_id(bad)
    assert caught.value.details["field"] == "process_id"


def test_bad_kind_is_refused() -> None:
    """A process kind is a lowercase name."""
    with pytest.raises(ValidationError):
        ProcessRegistration("p1", "Not A Name", R, "s1")


def test_derived_ids_are_deterministic() -> None:
    """A replayed spawn registers the same process and child session; the wake key names
    the event."""
    pid = subagent_process_id("s1", "turn_1", "call_1")
    assert pid == subagent_process_id("s1", "turn_1", "call_1")
    assert pid != subagent_process_id("s1", "turn_1", "call_2")
    check_process_id(pid)
    assert child_session_id(pid) == f"{pid}.child"
    assert wake_source_key("p1", 3) == "process:p1:event:3:wake"


@pytest.mark.parametrize(
    ("disposition", "status", "started", "lease", "decision"),
    [
        (R, ProcessStatus.COMPLETED, False, "free", "done"),
        (E, RUNNING, False, "free", "external"),
        (E, RUNNING, True, "dead_holder", "external"),
        (R, RUNNING, False, "live_other", "busy"),
        (OB, RUNNING, True, "live_other", "busy"),
        (R, RUNNING, True, "dead_holder", "run"),
        (R, RUNNING, False, "free", "run"),
        (OB, RUNNING, False, "free", "start"),
        (OB, RUNNING, False, "expired", "start"),
        (OB, RUNNING, True, "dead_holder", "abandon"),
        (OB, RUNNING, True, "expired", "wait"),
        (OB, RUNNING, True, "free", "wait"),
        (OB, RUNNING, True, "mine", "run"),
    ],
)
def test_recovery_follows_the_disposition(
    disposition: Disposition, status: ProcessStatus, started: bool, lease: str, decision: str
) -> None:
    """Rerunnable reruns; owner_bound starts once and is abandoned only when its holder is
    provably dead; externally owned is never run; elapsed time alone ends nothing."""
    assert recovery_decision(disposition, status, started, lease) == decision  # type: ignore[arg-type]
