"""`Client`: the Python interface for services that put agents into products.

It writes rows straight to the database (commit first), then publishes a poke, so
a lost poke only delays work until the sweeper re-pokes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lash_tasks import service
from lash_tasks.attachments import (
    DEFAULT_MEDIA_TYPE,
    BlobStore,
    SessionAttachments,
    blob_store_from_url,
)
from lash_tasks.errors import LashError, NotFound, ValidationError
from lash_tasks.ingress import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    parse_payload,
)
from lash_tasks.settings import Settings
from lash_tasks.store.records import InputState, check_session_id
from lash_tasks.store.sql_store import SqlStore

log = logging.getLogger(__name__)


class WaitTimeout(LashError):
    code = "wait_timeout"
    retryable = True


@dataclass(frozen=True)
class TurnAnswer:
    input_id: str
    state: str
    turn_id: str | None
    outcome: dict[str, Any] | None

    @property
    def text(self) -> str:
        return str((self.outcome or {}).get("text", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_id": self.input_id,
            "state": self.state,
            "turn_id": self.turn_id,
            "outcome": self.outcome,
        }


class Client:
    def __init__(
        self,
        store: SqlStore,
        settings: Settings,
        celery_app: Any | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._app = celery_app
        self._redis: Any = None
        self._blobs = blobs

    @classmethod
    def from_env(cls) -> Client:
        settings = Settings.from_env()
        settings.ensure_local_dirs()
        return cls(SqlStore.from_url(settings.database_url), settings)

    @property
    def app(self) -> Any:
        if self._app is None:
            from lash_tasks.worker.app import app

            self._app = app
        return self._app

    @property
    def redis(self) -> Any:
        """Redis for poke coalescing, when the fleet has one (None on the embedded default)."""
        if self._redis is None and self.settings.redis_url:
            import redis

            self._redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)
        return self._redis

    @property
    def blobs(self) -> BlobStore:
        """The fleet's attachment store (`LASH_ATTACHMENTS_URL`)."""
        if self._blobs is None:
            self._blobs = blob_store_from_url(self.settings.attachments_url)
        return self._blobs

    def close(self) -> None:
        self.store.close()
        if self._redis is not None:
            self._redis.close()

    def create_session(self, session_id: str, **options: Any) -> str:
        payload = parse_payload(CreateSessionPayload, {"session_id": session_id, **options})
        return service.create_session(self.store, payload, self.settings).session_id

    def enqueue_turn(self, session_id: str, text: str, **options: Any) -> str:
        """Record the input durably, then poke a worker. Returns the input id."""
        payload = parse_payload(
            EnqueueTurnPayload, {"session_id": session_id, "text": text, **options}
        )
        row = service.enqueue_turn(self.store, payload)
        try:
            self.poke(session_id)
        except Exception as exc:
            # The input is durable; the sweeper will poke it. Failing here would invite the
            # caller to submit it again.
            log.warning(
                "input %s stored, but the poke failed (%s); the sweeper will pick it up",
                row.input_id,
                type(exc).__name__,
            )
        return row.input_id

    def put_attachment(
        self, session_id: str, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE
    ) -> str:
        """Store `data` for the session; returns the id to name in `enqueue_turn(...,
        attachments=[id])`. Images (png, jpeg, gif, webp) and small text reach the model.

        The session's write-ahead manifest row is recorded before the bytes land. Named by an
        input, the attachment is kept for as long as the session references it; never named,
        it is reclaimed after the GC grace window (`LASH_ATTACHMENT_GRACE_S`).
        """
        check_session_id(session_id)
        # Always the manifest facade, whatever the store's tier: enqueue accepts only ids the
        # session holds a manifest row for.
        return SessionAttachments(self.store, self.blobs, session_id).put(data, media_type)

    def get_attachment(self, session_id: str, attachment_id: str) -> bytes:
        """The bytes of an attachment the session holds, else `AttachmentNotFound`."""
        check_session_id(session_id)
        return SessionAttachments(self.store, self.blobs, session_id).get(attachment_id)

    def poke(self, session_id: str) -> None:
        from lash_tasks.worker.pokes import poke_session

        poke_session(self.app, session_id, self.redis)

    def wait_for_input(
        self, session_id: str, input_id: str, timeout: float = 60.0, poll: float = 0.1
    ) -> TurnAnswer:
        """Block until the input's turn ended (or it was cancelled)."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.store.get_input(session_id, input_id)
            if row is None:
                raise NotFound(f"input {input_id!r} of session {session_id!r} does not exist")
            if row.state in (InputState.COMPLETED, InputState.CANCELLED):
                outcome = None
                if row.turn_id is not None:
                    stamp = self.store.turn_result(session_id, row.turn_id)
                    outcome = (stamp or {}).get("outcome")
                return TurnAnswer(input_id, row.state, row.turn_id, outcome)
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"input {input_id!r} still {row.state} after {timeout:.0f} s",
                    session_id=session_id,
                    input_id=input_id,
                )
            time.sleep(poll)

    def session_view(self, session_id: str) -> dict[str, Any]:
        loaded = self.store.load(session_id)
        owner, fencing, expires = self.store.lease_state(session_id)
        transcript = [
            {"node_id": n.node_id, "kind": n.kind, **dict(n.payload)}
            for n in loaded.graph.active_path()
        ]
        return {
            "session_id": session_id,
            "head_revision": loaded.record.head_revision,
            "model": loaded.record.policy.model.id if loaded.record.policy else None,
            "usage": loaded.record.usage.to_json(),
            "active_turn": loaded.active_turn.turn_id if loaded.active_turn else None,
            "pending_inputs": [i.input_id for i in self.store.list_pending_inputs(session_id)],
            "lease": {"owner": owner, "fencing_token": fencing, "expires_at": expires},
            "transcript": transcript,
        }

    def cancel_input(
        self, session_id: str, input_id: str | None = None, *, interrupt: bool = False
    ) -> dict[str, Any]:
        payload = parse_payload(
            CancelInputPayload,
            {"session_id": session_id, "input_id": input_id, "interrupt": interrupt},
        )
        if input_id is None and not interrupt:
            raise ValidationError("cancel_input needs an input_id or interrupt=True")
        return service.cancel_input(self.store, payload)

    def delete_session(self, session_id: str) -> bool:
        return self.store.delete_session(session_id)

    def events(
        self, session_id: str, timeout: float | None = None, poll: float = 0.2
    ) -> Iterator[dict[str, Any]]:
        """Yield a `committed` event each time the session's head revision moves."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = -1
        while deadline is None or time.monotonic() < deadline:
            view = self.store.session_record(session_id)
            if view.head_revision != last:
                last = view.head_revision
                yield {"type": "committed", "session_id": session_id, "head_revision": last}
            time.sleep(poll)
