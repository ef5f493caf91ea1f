"""OpenAI Chat Completions provider; also serves OpenAI-compatible servers.

vLLM, Ollama, llama.cpp's server and OpenRouter all accept the same requests, so `base_url`
follows the OPENAI_BASE_URL convention: it already ends in the API version (`.../v1`) and
`/chat/completions` is appended to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from lash_tasks.errors import ProviderError
from lash_tasks.machine.messages import LlmRequest, LlmResponse
from lash_tasks.providers import openai_wire
from lash_tasks.providers.http_provider import HttpProvider
from lash_tasks.providers.http_send import RetryPolicy
from lash_tasks.providers.interrupt import Interrupt, interruptible

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIChatProvider(HttpProvider):
    """Chat Completions over HTTP. `api_key=None` sends no Authorization header (local servers).

    With `stream=True` the answer is read as server-sent events and `on_text_delta` sees text
    as it arrives; otherwise it receives the whole text once.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str = DEFAULT_OPENAI_BASE_URL,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        max_tokens_field: str = "max_tokens",
    ) -> None:
        super().__init__(
            base_url, api_key, client=client, retry=retry or RetryPolicy(), sleep=sleep
        )
        self.stream = stream
        self.max_tokens_field = max_tokens_field

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, stream={self.stream})"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if self.stream else "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def complete(
        self,
        request: LlmRequest,
        on_text_delta: Callable[[str], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> LlmResponse:
        with interruptible(interrupt):
            return self._complete(request, on_text_delta)

    def _complete(
        self, request: LlmRequest, on_text_delta: Callable[[str], None] | None
    ) -> LlmResponse:
        body = openai_wire.build_chat_request(
            request, stream=self.stream, max_tokens_field=self.max_tokens_field
        )
        if self.stream:
            return self._complete_streaming(body, on_text_delta)
        response = self._post(self.url, body)
        try:
            answer = openai_wire.parse_chat_response(response.content)
        except ProviderError as exc:
            raise self._scrubbed(exc) from exc
        if on_text_delta is not None and answer.text:
            on_text_delta(answer.text)
        return answer

    def _complete_streaming(
        self, body: dict[str, object], on_text_delta: Callable[[str], None] | None
    ) -> LlmResponse:
        with self._post_stream(self.url, body) as response:
            try:
                if "json" in response.headers.get("content-type", ""):
                    # Some compatible servers ignore `stream` and answer in one JSON body.
                    answer = openai_wire.parse_chat_response(response.read())
                    if on_text_delta is not None and answer.text:
                        on_text_delta(answer.text)
                    return answer
                return openai_wire.parse_chat_stream(response.iter_lines(), on_text_delta)
            except ProviderError as exc:
                raise self._scrubbed(exc) from exc
