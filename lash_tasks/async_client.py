"""`AsyncClient`: the `Client` for asyncio services.

Every method is the `Client` method of the same name run in a worker thread
(`asyncio.to_thread`), so there is one implementation of each operation and the event loop
never blocks on the database, the broker or a wait. A test keeps the two surfaces equal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal, cast

from lash_tasks.attachments.values import DEFAULT_MEDIA_TYPE
from lash_tasks.client import Client
from lash_tasks.events.vocabulary import SessionEvent
from lash_tasks.events.waiting import EventCallback
from lash_tasks.ingress.payloads import ReplyTo
from lash_tasks.settings import Settings
from lash_tasks.views import (
    CancelResult,
    DeleteReport,
    FleetStatus,
    InputView,
    SessionSummary,
    SessionView,
    TurnAnswer,
)

_END = object()


class AsyncClient:
    def __init__(self, client: Client) -> None:
        self.sync = client

    @classmethod
    def from_env(cls) -> AsyncClient:
        return cls(Client.from_env())

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncClient:
        return cls(Client.from_settings(settings))

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def create_session(
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
        return await asyncio.to_thread(
            self.sync.create_session,
            session_id,
            provider=provider,
            model=model,
            system_prompt=system_prompt,
            max_turns=max_turns,
            residency=residency,
            tools=tools,
        )

    async def enqueue_turn(
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
        return await asyncio.to_thread(
            self.sync.enqueue_turn,
            session_id,
            text,
            source_key=source_key,
            input_id=input_id,
            branch_from=branch_from,
            attachments=attachments,
            steer=steer,
            reply_to=reply_to,
        )

    async def put_attachment(
        self, session_id: str, data: bytes, media_type: str = DEFAULT_MEDIA_TYPE
    ) -> str:
        return await asyncio.to_thread(self.sync.put_attachment, session_id, data, media_type)

    async def get_attachment(self, session_id: str, attachment_id: str) -> bytes:
        return await asyncio.to_thread(self.sync.get_attachment, session_id, attachment_id)

    async def poke(self, session_id: str) -> None:
        await asyncio.to_thread(self.sync.poke, session_id)

    async def wait_for_input(
        self,
        session_id: str,
        input_id: str,
        timeout: float = 60.0,
        poll: float = 0.1,
        *,
        cursor: str | None = None,
        on_event: EventCallback | None = None,
    ) -> TurnAnswer:
        return await asyncio.to_thread(
            self.sync.wait_for_input,
            session_id,
            input_id,
            timeout,
            poll,
            cursor=cursor,
            on_event=on_event,
        )

    async def session_view(self, session_id: str) -> SessionView:
        return await asyncio.to_thread(self.sync.session_view, session_id)

    async def input(self, session_id: str, input_id: str) -> InputView:
        return await asyncio.to_thread(self.sync.input, session_id, input_id)

    async def sessions(
        self,
        *,
        state: Literal["running", "waiting", "idle"] | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[SessionSummary]:
        return await asyncio.to_thread(self.sync.sessions, state=state, limit=limit, after=after)

    async def status(self) -> FleetStatus:
        return await asyncio.to_thread(self.sync.status)

    async def cancel_input(
        self,
        session_id: str,
        input_id: str | None = None,
        *,
        source_key: str | None = None,
        interrupt: bool = False,
    ) -> CancelResult:
        return await asyncio.to_thread(
            self.sync.cancel_input,
            session_id,
            input_id,
            source_key=source_key,
            interrupt=interrupt,
        )

    async def delete_session(self, session_id: str) -> DeleteReport:
        return await asyncio.to_thread(self.sync.delete_session, session_id)

    async def events(
        self, session_id: str, cursor: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[SessionEvent]:
        """`Client.events`, each next event read in a worker thread."""
        events = self.sync.events(session_id, cursor, timeout)
        while True:
            event = await asyncio.to_thread(next, events, _END)
            if event is _END:
                return
            yield cast(SessionEvent, event)

    async def event_tail(self, session_id: str) -> str:
        return await asyncio.to_thread(self.sync.event_tail, session_id)
