"""Anthropic Messages API provider.

`base_url` follows the ANTHROPIC_BASE_URL convention: the host root, to which `/v1/messages`
is appended. A base URL that already ends in `/v1` is tolerated rather than doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmRequest, LlmResponse
from lash_tasks.providers import anthropic_wire
from lash_tasks.providers.http_provider import HttpProvider
from lash_tasks.providers.http_send import RetryPolicy
from lash_tasks.providers.interrupt import Interrupt, interruptible

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicMessagesProvider(HttpProvider):
    """Messages API over HTTP, non-streaming: `on_text_delta` receives the whole text once."""

    name = "anthropic"

    def __init__(
        self,
        base_url: str = DEFAULT_ANTHROPIC_BASE_URL,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_tokens: int = anthropic_wire.DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__(
            base_url, api_key, client=client, retry=retry or RetryPolicy(), sleep=sleep
        )
        self.max_tokens = max_tokens

    @property
    def url(self) -> str:
        if self.base_url.endswith("/v1"):
            return f"{self.base_url}/messages"
        return f"{self.base_url}/v1/messages"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def complete(
        self,
        request: LlmRequest,
        on_text_delta: Callable[[str], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> LlmResponse:
        body = anthropic_wire.build_messages_request(request, max_tokens=self.max_tokens)
        with interruptible(interrupt):
            response = self._post(self.url, body)
        try:
            answer = anthropic_wire.parse_messages_response(response.content)
        except ProviderError as exc:
            raise self._scrubbed(exc) from exc
        if on_text_delta is not None and answer.text:
            on_text_delta(answer.text)
        return answer
