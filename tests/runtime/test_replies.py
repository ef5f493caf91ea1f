"""A turn whose inputs asked for a reply writes it in its final commit and hands it to the
worker's sender right after (both dialects)."""

from __future__ import annotations

from collections.abc import Sequence

from lash_tasks.machine import OutboxReply
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import InputDraft
from tests.runtime.conftest import Harness

ROUTE = {"task": "app.answers", "queue": "app"}
CALCULATE = (
    '[{"match": "calc", "tool_calls": [{"name": "calculator", "arguments": {"expression": "1"}}]}]'
)


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[OutboxReply] = []

    def send(self, replies: Sequence[OutboxReply]) -> None:
        self.sent.extend(replies)


def test_the_final_commit_writes_the_reply_and_the_sender_gets_it(harness: Harness) -> None:
    """One outbox row per input that asked, in the final commit; published after it."""
    sender = RecordingSender()
    core, _ = harness.core(replies=sender)
    sid = harness.session()
    waiting = harness.enqueue(sid, "hello", reply_to=ROUTE)
    harness.enqueue(sid, "no reply wanted")
    result = harness.run_until_settled(core, sid)
    [reply] = sender.sent
    assert (reply.task, reply.queue) == ("app.answers", "app")
    assert reply.idempotency_key == f"{sid}:{result.turn_id}:{waiting.input_id}"
    assert reply.body["outcome"] == result.outcome
    assert reply.body["input_ids"] == [i.input_id for i in harness.store.inputs.list_all(sid)]
    [row] = harness.store.replies.list(sid)
    assert row.reply == reply
    assert row.sent_at is None  # this sender never marks; the sweeper would send it again


def test_a_steer_input_asking_for_a_reply_gets_the_turn_it_joined(harness: Harness) -> None:
    """Steer input taken into a running turn is answered by that turn's reply."""
    sender = RecordingSender()
    core, _ = harness.core(CALCULATE, replies=sender)
    sid = harness.session()
    harness.enqueue(sid, "calc please")
    assert run_step(core, sid).status == "progressed"
    steer = harness.store.inputs.enqueue(
        InputDraft(sid, "steer-1", {"text": "and one", "reply_to": ROUTE}, ingress="active_turn")
    )
    finished = harness.run_until_settled(core, sid)
    [reply] = sender.sent
    assert reply.body["input_id"] == steer.input_id
    assert reply.body["turn_id"] == finished.turn_id
