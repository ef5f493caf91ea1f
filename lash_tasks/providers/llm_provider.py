"""The LLM provider protocol: what the runtime calls to get one answer from a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from lash_tasks.machine.messages import LlmRequest, LlmResponse
from lash_tasks.providers.interrupt import Interrupt


@runtime_checkable
class LlmProvider(Protocol):
    """One LLM backend.

    `complete` calls `on_text_delta` with pieces of the answer text as they become available;
    the pieces always concatenate to `LlmResponse.text`. A provider that does not stream
    delivers the whole text in one piece, so callers need not care which kind they hold.

    When `interrupt` fires, `complete` gives up at once, even mid-request, and raises the
    interrupt's error.
    """

    name: str

    def complete(
        self,
        request: LlmRequest,
        on_text_delta: Callable[[str], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> LlmResponse: ...

    def close(self) -> None: ...
