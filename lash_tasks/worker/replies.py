"""Publishing turn replies (`reply_to`) through the broker, after the commit that wrote them.

Each reply is one Celery message to the caller's task on the caller's queue, with the reply
body as its one argument and its idempotency key as the task id. A publish that fails leaves
the outbox row unsent; the sweeper publishes it again (at least once, never lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kombu.exceptions import OperationalError

from lash_tasks.machine import OutboxReply
from lash_tasks.store.replies import Replies

log = logging.getLogger(__name__)
# The sweeper leaves a reply this long to the worker that committed it.
REPLY_GRACE_MS = 5_000


def publish_replies(app: Any, outbox: Replies, replies: Sequence[OutboxReply]) -> int:
    """Publish each reply and mark those that went out as sent; returns how many did."""
    sent = []
    for reply in replies:
        try:
            app.send_task(
                reply.task,
                args=(reply.body,),
                queue=reply.queue,
                task_id=reply.idempotency_key,
            )
        except (OperationalError, OSError) as exc:
            log.warning("reply %s not published, the sweeper will: %s", reply.idempotency_key, exc)
            continue
        sent.append(reply)
    try:
        outbox.mark_sent(sent)
    except Exception as exc:  # published, but it may go out once more: receivers dedupe
        log.warning("could not mark %d replies sent: %s", len(sent), type(exc).__name__)
    return len(sent)


class CeleryReplySender:
    """The worker's `ReplySender`: publishes through the worker's own Celery app."""

    def __init__(self, app: Callable[[], Any], outbox: Replies) -> None:
        self._app = app
        self._outbox = outbox

    def send(self, replies: Sequence[OutboxReply]) -> None:
        try:
            publish_replies(self._app(), self._outbox, replies)
        except Exception as exc:  # the step committed; the sweeper sends what is left
            log.warning("replies not published: %s", type(exc).__name__)


def republish_unsent(app: Any, outbox: Replies, older_than_ms: int = REPLY_GRACE_MS) -> int:
    """The sweeper's part: publish replies whose worker never did (it died after the commit,
    or the broker was away)."""
    return publish_replies(app, outbox, outbox.unsent(older_than_ms))
