"""`Client`: the Python interface for services that put agents into products.

It writes rows straight to the database (commit first), then publishes a poke, so
a lost poke only delays work until the sweeper re-pokes it. Answers and live events come
from the session's event stream (Redis when configured, else the database event log).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

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
from lash_tasks.events.waiting import EventCallback
from lash_tasks.ingress import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    operations,
    parse_payload,
    reads,
)
from lash_tasks.ingress.payloads import ReplyTo
from lash_tasks.machine.ids import check_session_id
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store
from lash_tasks.views import (
    CancelResult,
    DeleteReport,
    FleetStatus,
    InputView,
    SessionSummary,
    SessionView,
    TurnAnswer,
)
from lash_tasks.worker.publishing import publishing_app

__all__ = ["Client", "ReplyTo", "TurnAnswer", "WaitTimeout"]
P = TypeVar("P", bound=BaseModel)


def _parse(payload_type: type[P], /, **fields: Any) -> P:
    """The payload of these keyword arguments; None means "not given" (the default)."""
    return parse_payload(payload_type, {k: v for k, v in fields.items() if v is not None})


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
        self._owns_app = celery_app is None
        self._redis: Any = None
        self._blobs = blobs
        self._event_source: EventSource | None = None
        self._publisher: EventPublisher | None = None

    @classmethod
    def from_env(cls) -> Client:
        """A client configured like the fleet, from LASH_* variables."""
        return cls.from_settings(Settings.from_env())

    @classmethod
    def from_settings(cls, settings: Settings) -> Client:
        """A client of the fleet `settings` describe: its database, its broker, its Redis."""
        settings.ensure_local_dirs()
        return cls(Store.from_url(settings.database_url), settings)

    @property
    def app(self) -> Any:
        """The Celery app this client pokes through: its own, on the broker of its settings
        (never the process-global worker app, which another client may not share)."""
        if self._app is None:
            self._app = publishing_app(self.settings)
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
                self._event_source = RedisEventSource(self.settings.redis_url, self._view_json)
            else:
                self._event_source = DatabaseEventSource(self.store.events, self._view_json)
        return self._event_source

    @property
    def publisher(self) -> EventPublisher:
        """Publishes the events this client causes (a cancelled input) to live readers."""
        if self._publisher is None:
            self._publisher = publisher_from_settings(self.settings)
        return self._publisher

    def _view_json(self, session_id: str) -> dict[str, Any]:
        return self.session_view(session_id).model_dump(mode="json")

    def close(self) -> None:
        if self._app is not None and self._owns_app:
            self._app.close()
        if self._publisher is not None:
            self._publisher.close()
        if self._event_source is not None:
            self._event_source.close()
        self.store.close()
        if self._redis is not None:
            self._redis.close()

    def create_session(
        self,
        session_id: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        residency: Literal["keep_all", "active_path_only"] | None = None,
        tools: Sequence[str] | None = None,
    ) -> SessionView:
        """Create a session (the same call again is a no-op). `provider` is one of the LLM
        provider names the fleet knows (default LASH_PROVIDER), `model` its model id
        (default LASH_MODEL), `tools` the registered tools the session may use (default:
        all). A bad value raises a `ValidationError` naming the field; nothing is written."""
        payload = _parse(
            CreateSessionPayload,
            session_id=session_id,
            provider=provider,
            model=model,
            system_prompt=system_prompt,
            max_turns=max_turns,
            residency=residency,
            tools=None if tools is None else list(tools),
        )
        operations.create_session(self.store, payload, self.settings)
        return self.session_view(session_id)

    def enqueue_turn(
        self,
        session_id: str,
        text: str,
        *,
        source_key: str | None = None,
        input_id: str | None = None,
        branch_from: str | None = None,
        attachments: Sequence[str] = (),
        steer: bool = False,
        reply_to: ReplyTo | Mapping[str, str] | None = None,
    ) -> str:
        """Record the input durably, then poke a worker. Returns the input id.

        `source_key` makes the submission idempotent; `branch_from` runs the turn from that
        node of the session; `attachments` are ids from `put_attachment`; `steer` joins the
        running turn; `reply_to` ({"task", "queue"}) has the fleet send the turn's outcome
        to that Celery task when it ends."""
        payload = _parse(
            EnqueueTurnPayload,
            session_id=session_id,
            text=text,
            source_key=source_key,
            input_id=input_id,
            branch_from=branch_from,
            attachments=list(attachments),
            steer=steer,
            reply_to=reply_to.model_dump() if isinstance(reply_to, ReplyTo) else reply_to,
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

    def session_view(self, session_id: str) -> SessionView:
        return reads.session_view(self.store, session_id)

    def input(self, session_id: str, input_id: str) -> InputView:
        """One input: what was submitted, its state, and its turn's outcome once ended."""
        return reads.input_view(self.store, session_id, input_id)

    def sessions(
        self,
        *,
        state: Literal["running", "waiting", "idle"] | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[SessionSummary]:
        """Sessions in id order (`after` the given id, for the next page)."""
        return reads.session_list(self.store, activity=state, limit=limit, after=after)

    def status(self) -> FleetStatus:
        """The fleet's backlog, from the database."""
        return reads.fleet_status(self.store)

    def cancel_input(
        self,
        session_id: str,
        input_id: str | None = None,
        *,
        source_key: str | None = None,
        interrupt: bool = False,
    ) -> CancelResult:
        payload = _parse(
            CancelInputPayload,
            session_id=session_id,
            input_id=input_id,
            source_key=source_key,
            interrupt=interrupt,
        )
        return operations.cancel_input(self.store, payload, self.publisher)

    def delete_session(self, session_id: str) -> DeleteReport:
        """Delete the session's rows; the report lists running processes it leaves without
        an owner (`orphaned_process_ids`). An unknown session gives a no-op report."""
        check_session_id(session_id)
        return DeleteReport.model_validate(self.store.sessions.delete(session_id).to_json())

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
