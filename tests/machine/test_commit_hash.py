"""Pure tests of the turn-commit hash: stable across replays, sensitive to content."""

from __future__ import annotations

from typing import Any

from lash_tasks.machine import (
    CommitDraft,
    Fence,
    GraphAppend,
    Message,
    Node,
    QueuedWorkDraft,
    canonical_json,
    stable_hash,
    turn_commit_hash,
)


def _turn(prefix: str, stamp: str, answer: str = "4", fence_token: int = 1) -> CommitDraft:
    """The same turn as a (re)run would draft it, with run-specific ids and clocks."""
    user = Node(f"{prefix}-u", "root", "message", Message("user", "2+2?").to_json(), stamp)
    reply = Message("assistant", answer).to_json()
    assistant = Node(f"{prefix}-a", user.node_id, "message", reply, stamp)
    return CommitDraft(
        session_id="s1",
        expected_head_revision=fence_token + 6,
        fence=Fence("s1", f"worker-{prefix}", f"token-{prefix}", fence_token),
        graph=GraphAppend((user, assistant), assistant.node_id),
        outbox=(QueuedWorkDraft("follow-up", "turn_work", ({"type": "wake"},)),),
        committed_attachment_ids=("att-2", "att-1"),
    )


def test_replayed_turn_with_fresh_ids_and_timestamps_hashes_equal() -> None:
    """Node ids, parent ids, leaf ids, timestamps, fence and revision do not change the hash."""
    first = _turn("run1", "2025-01-01T00:00:00Z")
    replay = _turn("run2", "2025-06-30T12:34:56Z", fence_token=7)
    assert turn_commit_hash(first.hashable_content()) == turn_commit_hash(replay.hashable_content())


def test_message_ids_are_volatile_but_other_ids_are_content() -> None:
    """Message and part ids (and message_id keys) are scrubbed; an id elsewhere is hashed."""

    def content(message_id: str, part_id: str, tool_id: str) -> dict[str, Any]:
        return {
            "message": {"id": message_id, "text": "hi", "message_id": message_id},
            "parts": [{"part": {"id": part_id, "kind": "text"}, "part_id": part_id}],
            "tool": {"id": tool_id},
            "timestamp": message_id,
        }

    base = turn_commit_hash(content("m1", "p1", "t1"))
    assert turn_commit_hash(content("m2", "p2", "t1")) == base
    assert turn_commit_hash(content("m1", "p1", "t2")) != base


def test_changed_text_hashes_differently() -> None:
    """A turn whose content differs (answer text, outbox, attachments) hashes differently."""
    stamp = "2025-01-01T00:00:00Z"
    base = turn_commit_hash(_turn("r", stamp).hashable_content())
    assert turn_commit_hash(_turn("r", stamp, answer="5").hashable_content()) != base
    other_outbox = _turn("r", stamp).hashable_content()
    other_outbox["outbox"] = []
    assert turn_commit_hash(other_outbox) != base
    other_attachments = _turn("r", stamp).hashable_content()
    other_attachments["attachments"] = ["att-1"]
    assert turn_commit_hash(other_attachments) != base


def test_attachment_order_does_not_matter() -> None:
    """Committed attachment ids are hashed as a set."""
    draft = _turn("r", "t")
    swapped = CommitDraft(
        session_id=draft.session_id,
        expected_head_revision=draft.expected_head_revision,
        fence=draft.fence,
        graph=draft.graph,
        outbox=draft.outbox,
        committed_attachment_ids=("att-1", "att-2"),
    )
    assert turn_commit_hash(draft.hashable_content()) == turn_commit_hash(
        swapped.hashable_content()
    )


def test_hash_is_hex_sha256_and_key_order_independent() -> None:
    """Hashes are 64 hex chars over canonical JSON; dict key order does not matter."""
    a = {"b": 1, "a": [1, {"y": 2, "x": 3}]}
    b = {"a": [1, {"x": 3, "y": 2}], "b": 1}
    assert canonical_json(a) == canonical_json(b)
    digest = turn_commit_hash(a)
    assert digest == turn_commit_hash(b)
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_stable_hash_scrubs_nothing() -> None:
    """stable_hash (envelopes, registrations) treats ids and timestamps as content."""
    assert stable_hash({"node_id": "a"}) != stable_hash({"node_id": "b"})
    assert turn_commit_hash({"node_id": "a"}) == turn_commit_hash({"node_id": "b"})
