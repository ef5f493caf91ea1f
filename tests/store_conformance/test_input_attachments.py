"""Store conformance: attachments named by user input — recorded in the enqueue transaction."""

from __future__ import annotations

from typing import Any

import pytest

from lash_tasks.attachments import attachment_uri
from lash_tasks.errors import UnknownAttachment, ValidationError
from lash_tasks.machine.ids import attachment_id_for
from lash_tasks.store.records import CancelOutcome, InputDraft, PendingInput
from lash_tasks.store.store import Store
from tests.store_conformance.support import append, msg, new_session, take_lease

HOUR_MS = 3_600_000


def put_row(store: Store, session_id: str, data: bytes, media_type: str = "image/png") -> str:
    """What a put through the session facade leaves: an ownerless write-ahead intent."""
    attachment_id = attachment_id_for(data)
    store.manifest.record_intent(
        session_id, attachment_id, attachment_uri(attachment_id), media_type=media_type
    )
    return attachment_id


def enqueue_with(
    store: Store, session_id: str, key: str, attachments: Any, text: str = "look"
) -> PendingInput:
    return store.inputs.enqueue(
        InputDraft(session_id, key, {"text": text, "attachments": attachments})
    )


def far_future(store: Store) -> int:
    """A GC cutoff an hour ahead: every intent is old enough to die if its owner is dead."""
    return store.manifest.now_ms() + HOUR_MS


def test_enqueue_makes_the_input_own_its_attachment_rows(store: Store) -> None:
    """Enqueue re-owns each named intent to the input and refreshes it; committed rows stay."""
    sid = new_session(store)
    image = put_row(store, sid, b"png bytes")
    committed = put_row(store, sid, b"older, committed", "text/plain")
    lease = take_lease(store, sid)
    store.commits.commit(
        append(sid, 0, lease.fence, [msg("n1", None)], committed_attachment_ids=(committed,))
    )
    before = {r.attachment_id: r for r in store.manifest.rows(sid)}

    row = enqueue_with(store, sid, "k1", [image, committed])

    after = {r.attachment_id: r for r in store.manifest.rows(sid)}
    assert (after[image].owner_kind, after[image].owner_id) == ("input", row.input_id)
    assert after[image].committed_at is None
    assert after[image].intent_at >= before[image].intent_at
    assert after[image].media_type == "image/png"
    assert after[committed] == before[committed]
    assert row.input["attachments"] == [image, committed]


def test_enqueue_rejects_an_attachment_the_session_does_not_hold(store: Store) -> None:
    """An id without a row of this session (another session's, or never put) is
    UnknownAttachment naming it, and nothing is written."""
    sid = new_session(store, "s1")
    other = new_session(store, "s2")
    mine = put_row(store, sid, b"mine")
    theirs = put_row(store, other, b"theirs")
    never_put = attachment_id_for(b"never put")
    rows_before = store.manifest.rows(sid), store.manifest.rows(other)

    for bad in (theirs, never_put):
        with pytest.raises(UnknownAttachment) as info:
            enqueue_with(store, sid, f"k-{bad[:8]}", [mine, bad])
        assert bad in info.value.message
        assert info.value.details["attachment_ids"] == [bad]

    assert store.inputs.list_all(sid) == []
    assert (store.manifest.rows(sid), store.manifest.rows(other)) == rows_before


@pytest.mark.parametrize("attachments", ["abc", ["../../etc/passwd"], [b"x" * 64], {"a": 1}])
def test_enqueue_rejects_malformed_attachment_lists(store: Store, attachments: Any) -> None:
    """Attachments that are not a list of sha256 ids raise ValidationError; nothing written."""
    sid = new_session(store)
    with pytest.raises(ValidationError):
        enqueue_with(store, sid, "k1", attachments)
    assert store.inputs.list_all(sid) == []


def test_a_repeated_submission_with_attachments_returns_the_existing_input(
    store: Store,
) -> None:
    """Same source key, same content (attachments included): the existing input, no error."""
    sid = new_session(store)
    image = put_row(store, sid, b"png")
    first = enqueue_with(store, sid, "k1", [image])
    assert enqueue_with(store, sid, "k1", [image]).input_id == first.input_id
    assert len(store.inputs.list_all(sid)) == 1


def test_a_pending_input_keeps_its_attachments_live_until_cancelled(store: Store) -> None:
    """An input's rows stay GC roots while it is open; once cancelled they are dead intents."""
    sid = new_session(store)
    image = put_row(store, sid, b"png")
    row = enqueue_with(store, sid, "k1", [image])
    cutoff = far_future(store)
    assert store.manifest.has_live_ref(image, cutoff)
    assert store.manifest.forget_dead_intents(cutoff) == 0

    assert store.inputs.cancel(sid, input_id=row.input_id) == CancelOutcome.CANCELLED

    assert not store.manifest.has_live_ref(image, cutoff)
    assert store.manifest.forget_dead_intents(cutoff) == 1
    assert store.manifest.rows(sid) == []


def test_cancelling_one_of_two_inputs_naming_an_attachment_keeps_it_for_the_other(
    store: Store,
) -> None:
    """A row has one owner (the latest input), yet any open input of the session keeps it."""
    sid = new_session(store)
    image = put_row(store, sid, b"png")
    first = enqueue_with(store, sid, "k1", [image], text="first")
    second = enqueue_with(store, sid, "k2", [image], text="second")
    assert store.manifest.rows(sid)[0].owner_id == second.input_id

    store.inputs.cancel(sid, input_id=second.input_id)
    assert store.manifest.has_live_ref(image, far_future(store))
    store.inputs.cancel(sid, input_id=first.input_id)
    assert not store.manifest.has_live_ref(image, far_future(store))


def test_the_commit_writing_the_inputs_message_stamps_its_attachments(store: Store) -> None:
    """Listed in committed_attachment_ids, the input's row becomes committed and outlives
    the input."""
    sid = new_session(store)
    image = put_row(store, sid, b"png")
    row = enqueue_with(store, sid, "k1", [image])
    lease = take_lease(store, sid)
    store.commits.commit(
        append(sid, 0, lease.fence, [msg("n1", None)], committed_attachment_ids=(image,))
    )
    store.inputs.cancel(sid, input_id=row.input_id)
    [manifest] = store.manifest.rows(sid)
    assert manifest.committed_at is not None
    assert store.manifest.has_live_ref(image, far_future(store))
