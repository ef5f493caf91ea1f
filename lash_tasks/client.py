"""`Client`: the Python interface for services that put agents into products.

It writes rows straight to the database (commit first), then publishes a poke, so
a lost poke only delays work until the sweeper re-pokes it. Answers and live events come
from the session's event stream (Redis when configured, else the database event log).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lash_tasks.attachments import (
    DEFAULT_MEDIA_TYPE,
    BlobStore,
    SessionAttachments,
    blob_store_from_url,
)
from lash_tasks.errors import WaitTimeout
from lash_tasks.events import waiting
from lash_tasks.events.database_source import DatabaseEventSource
from lash_tasks.events.emitter import publisher_from_settings
from lash_tasks.events.publisher import EventPublisher
from lash_tasks.events.redis_source import RedisEventSource
from lash_tasks.events.sources import EventSource, read
from lash_tasks.events.vocabulary import SessionEvent
from lash_tasks.events.waiting import EventCallback, TurnAnswer
from lash_tasks.ingress import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    operations,
    parse_payload,
)
from lash_tasks.machine.ids import check_session_id
from lash_tasks.settings import Settings
from lash_tasks.store.records import SessionDeleteReport
from lash_tasks.store.store import Store

__all__ = ["Client", "SessionDeleteReport", "TurnAnswer", "WaitTimeout"]


class Client:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        celery_app: Any | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._app = celery_app
        self._redis: Any = None
        self._blobs = blobs
        self._event_source: EventSource | None = None
        self._publisher: EventPublisher | None = None

    @classmethod
    def from_env(cls) -> Client:
        settings = Settings.from_env()
        settings.ensure_local_dirs()
        return cls(Store.from_url(settings.database_url), settings)

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

    @property
    def event_source(self) -> EventSource:
        """The session event stream: Redis when configured, else the database event log."""
        if self._event_source is None:
            if self.settings.redis_url:
                self._event_source = RedisEventSource(self.settings.redis_url, self.session_view)
            else:
                self._event_source = DatabaseEventSource(self.store.events, self.session_view)
        return self._event_source

    @property
    def publisher(self) -> EventPublisher:
        """Publishes the events this client causes (a cancelled input) to live readers."""
        if self._publisher is None:
            self._publisher = publisher_from_settings(self.settings)
        return self._publisher

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        if self._event_source is not None:
            self._event_source.close()
        self.store.close()
        if self._redis is not None:
            self._redis.close()

    def create_session(self, session_id: str, **options: Any) -> str:
        payload = parse_payload(CreateSessionPayload, {"session_id": session_id, **options})
        return operations.create_session(self.store, payload, self.settings).session_id

    def enqueue_turn(self, session_id: str, text: str, **options: Any) -> str:
        """Record the input durably, then poke a worker. Returns the input id."""
        payload = parse_payload(
            EnqueueTurnPayload, {"session_id": session_id, "text": text, **options}
        )
        return operations.enqueue_and_poke(self.store, payload, self.poke).input_id

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
        return SessionAttachments(self.store.manifest, self.blobs, session_id).put(data, media_type)

    def get_attachment(self, session_id: str, attachment_id: str) -> bytes:
        """The bytes of an attachment the session holds, else `AttachmentNotFound`."""
        check_session_id(session_id)
        return SessionAttachments(self.store.manifest, self.blobs, session_id).get(attachment_id)

    def poke(self, session_id: str) -> None:
        from lash_tasks.worker.pokes import poke_session

        poke_session(self.app, session_id, self.redis)

    def wait_for_input(
        self,
        session_id: str,
        input_id: str,
        timeout: float = 60.0,
        poll: float = 0.1,
        *,
        cursor: str | None = None,
        on_event: EventCallback | None = None,
    ) -> TurnAnswer:
        """Block until the input's turn ended (or it was cancelled); `WaitTimeout` after
        `timeout` seconds. Woken by the session's events, confirmed by one database read;
        `poll` is the polling interval used only while events do not flow. `on_event` sees
        each event read meanwhile, from `cursor` (see `event_tail`) when given."""
        return waiting.wait_for_input(
            self.store,
            self.event_source,
            session_id,
            input_id,
            timeout=timeout,
            cursor=cursor,
            on_event=on_event,
            poll_s=poll,
        )

    def session_view(self, session_id: str) -> dict[str, Any]:
        return operations.session_view(self.store, session_id)

    def cancel_input(
        self, session_id: str, input_id: str | None = None, *, interrupt: bool = False
    ) -> dict[str, Any]:
        payload = parse_payload(
            CancelInputPayload,
            {"session_id": session_id, "input_id": input_id, "interrupt": interrupt},
        )
        return operations.cancel_input(self.store, payload, self.publisher)

    def delete_session(self, session_id: str) -> SessionDeleteReport:
        """Delete the session's rows; the report lists running processes it leaves without
        an owner (`orphaned_process_ids`). An unknown session gives a no-op report."""
        return self.store.sessions.delete(session_id)

    def events(
        self, session_id: str, cursor: str | None = None, timeout: float | None = None
    ) -> Iterator[SessionEvent]:
        """The session's events in order after `cursor` (None: from the oldest kept), for
        `timeout` seconds (None: until the caller stops). Each carries its `cursor`; pass
        the last one seen to resume. A cursor older than what is kept yields a `gap` event
        with the session view first; a malformed or future cursor raises `InvalidCursor`."""
        return read(self.event_source, session_id, cursor, timeout)

    def event_tail(self, session_id: str) -> str:
        """A cursor after every event so far: `events(cursor=...)` then shows only new ones."""
        return self.event_source.tail(session_id)
