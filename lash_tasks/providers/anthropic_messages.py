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
from lash_tasks.providers import anthropic_stream, anthropic_wire
from lash_tasks.providers.http_provider import HttpProvider
from lash_tasks.providers.http_send import RetryPolicy
from lash_tasks.providers.interrupt import Interrupt, interruptible

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicMessagesProvider(HttpProvider):
    """Messages API over HTTP. `api_key=None` sends no key (a local gateway of your own).

    With `stream=True` the answer is read as server-sent events and `on_text_delta` sees text
    as it arrives; otherwise it receives the whole text once.
    """

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
        stream: bool = False,
    ) -> None:
        super().__init__(
            base_url, api_key, client=client, retry=retry or RetryPolicy(), sleep=sleep
        )
        self.max_tokens = max_tokens
        self.stream = stream

    @property
    def url(self) -> str:
        if self.base_url.endswith("/v1"):
            return f"{self.base_url}/messages"
        return f"{self.base_url}/v1/messages"

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, stream={self.stream})"

    def _headers(self) -> dict[str, str]:
        accept = "text/event-stream" if self.stream else "application/json"
        headers = {"Accept": accept, "anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def complete(
        self,
        request: LlmRequest,
        on_text_delta: Callable[[str], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> LlmResponse:
        body = anthropic_wire.build_messages_request(
            request, max_tokens=self.max_tokens, stream=self.stream
        )
        with interruptible(interrupt):
            if self.stream:
                return self._complete_streaming(body, on_text_delta)
            response = self._post(self.url, body)
        return self._whole(response.content, on_text_delta)

    def _whole(self, content: bytes, on_text_delta: Callable[[str], None] | None) -> LlmResponse:
        try:
            answer = anthropic_wire.parse_messages_response(content)
        except ProviderError as exc:
            raise self._scrubbed(exc) from exc
        if on_text_delta is not None and answer.text:
            on_text_delta(answer.text)
        return answer

    def _complete_streaming(
        self, body: dict[str, object], on_text_delta: Callable[[str], None] | None
    ) -> LlmResponse:
        with self._post_stream(self.url, body) as response:
            if "json" in response.headers.get("content-type", ""):
                # A gateway in front of the API may ignore `stream` and answer in one body.
                return self._whole(response.read(), on_text_delta)
            try:
                return anthropic_stream.parse_messages_stream(response.iter_lines(), on_text_delta)
            except ProviderError as exc:
                raise self._scrubbed(exc) from exc
