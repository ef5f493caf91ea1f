"""Who publishes a turn's replies once its final commit is durable (the worker's broker)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lash_tasks.machine import OutboxReply


class ReplySender(Protocol):
    """Publishes replies the commit just wrote, then marks them sent. Never raises: a reply
    that could not go out stays unsent in the outbox, and the sweeper sends it."""

    def send(self, replies: Sequence[OutboxReply]) -> None: ...


class OutboxOnly:
    """No publisher in this process: the replies wait in the outbox for a fleet's sweeper."""

    def send(self, replies: Sequence[OutboxReply]) -> None:
        return None
