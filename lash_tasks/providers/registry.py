"""The LLM providers a worker serves sessions with, by the name each session chose.

Every name in `Settings.llm_endpoints` (the built-in `scripted`, `openai`, `anthropic` and
each endpoint named by LASH_PROVIDER_<NAME>_KIND) is known; a worker *serves* those it has
what they need for: the vendor's own endpoint needs its key, an endpoint of your own (Ollama,
llama.cpp, vLLM) needs none. Each provider is built once per worker process, on first use.
The default provider (LASH_PROVIDER) must be servable, or the worker refuses to start.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from lash_tasks.errors import InvalidEnvironment
from lash_tasks.providers.anthropic_messages import (
    DEFAULT_ANTHROPIC_BASE_URL,
    AnthropicMessagesProvider,
)
from lash_tasks.providers.llm_provider import LlmProvider
from lash_tasks.providers.openai_chat import DEFAULT_OPENAI_BASE_URL, OpenAIChatProvider
from lash_tasks.providers.scripted import ScriptedProvider
from lash_tasks.settings import LlmEndpoint, Settings

PROVIDER_ENV = "LASH_PROVIDER"
PROVIDER_NAMES = ("scripted", "openai", "anthropic")
_VENDOR_URLS = {"openai": DEFAULT_OPENAI_BASE_URL, "anthropic": DEFAULT_ANTHROPIC_BASE_URL}


@dataclass(frozen=True)
class Unavailable:
    """Why this worker cannot serve a provider: a sentence for the turn's stopped outcome."""

    reason: str


class LlmProviders:
    """LLM providers by name. `single(p)` serves every session with `p`, whatever it named
    (embedded use and tests)."""

    def __init__(
        self,
        endpoints: Mapping[str, LlmEndpoint],
        env: Mapping[str, str],
        default: str,
        client: httpx.Client | None = None,
        stream: bool = False,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._env = dict(env)
        self._client = client
        self._stream = stream
        self._default = default
        self._built: dict[str, LlmProvider] = {}
        self._only: LlmProvider | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, client: httpx.Client | None = None, *, stream: bool | None = None
    ) -> LlmProviders:
        """Every endpoint of `settings`, checked: a malformed URL raises, and so does a
        default provider that is unknown or cannot be served here. HTTP providers stream
        their answers when `stream` (default `settings.llm_stream`: when live events are on)."""
        endpoints = {e.name: e for e in settings.llm_endpoints}
        for endpoint in endpoints.values():
            _check_url(endpoint)
        streaming = settings.llm_stream if stream is None else stream
        providers = cls(endpoints, settings.env, settings.provider, client, streaming)
        default = settings.provider
        if default not in endpoints:
            # The bad value is only echoed when short: a secret pasted into the wrong variable
            # should not end up in a log.
            shown = f" {default!r}" if len(default) <= 20 else ""
            raise InvalidEnvironment(
                f"{PROVIDER_ENV}{shown} is not one of: {', '.join(endpoints)}",
                variable=PROVIDER_ENV,
                allowed=list(endpoints),
            )
        missing = _missing_key(endpoints[default])
        if missing is not None:
            raise InvalidEnvironment(
                f"{missing} must be set when {PROVIDER_ENV}={default} uses the vendor's endpoint",
                variable=missing,
            )
        providers.resolve(default)  # built now: a bad wiring fails the start, not a turn
        return providers

    @classmethod
    def single(cls, provider: LlmProvider) -> LlmProviders:
        providers = cls({}, {}, provider.name)
        providers._only = provider
        return providers

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._endpoints)

    @property
    def default_name(self) -> str:
        return self._default

    @property
    def default(self) -> LlmProvider:
        provider = self.resolve(self._default)
        assert not isinstance(provider, Unavailable), provider.reason
        return provider

    def resolve(self, name: str) -> LlmProvider | Unavailable:
        """The provider serving `name`, or why this worker cannot serve it."""
        if self._only is not None:
            return self._only
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            return Unavailable(
                f"LLM provider {name!r} is not configured on this worker "
                f"(it serves: {', '.join(self.servable())})"
            )
        missing = _missing_key(endpoint)
        if missing is not None:
            return Unavailable(
                f"LLM provider {name!r} uses the vendor's endpoint and {missing} is not set "
                "on this worker"
            )
        with self._lock:
            provider = self._built.get(name)
            if provider is None:
                provider = self._built[name] = self._build(endpoint)
            return provider

    def servable(self) -> list[str]:
        return [n for n, e in self._endpoints.items() if _missing_key(e) is None]

    def close(self) -> None:
        with self._lock:
            built = [*self._built.values(), *([self._only] if self._only else [])]
            self._built.clear()
        for provider in built:
            provider.close()

    def _build(self, endpoint: LlmEndpoint) -> LlmProvider:
        if endpoint.kind == "scripted":
            return ScriptedProvider.from_env(self._env)
        url = endpoint.base_url or _VENDOR_URLS[endpoint.kind]
        if endpoint.kind == "openai":
            return OpenAIChatProvider(
                url, endpoint.api_key, client=self._client, stream=self._stream
            )
        return AnthropicMessagesProvider(
            url, endpoint.api_key, client=self._client, stream=self._stream
        )


def llm_provider_from_env(
    env: Mapping[str, str], client: httpx.Client | None = None, *, stream: bool = False
) -> LlmProvider:
    """The default provider (LASH_PROVIDER, default `scripted`), configured from `env`.

    With `stream` the HTTP providers ask for their answers as server-sent events, so text
    reaches `on_text_delta` as the model writes it (`Settings.llm_stream`: on when live
    events are). The scripted provider always hands out its answer in pieces.

    Errors name the variable at fault but never repeat a value that might be a secret.
    """
    return LlmProviders.from_settings(Settings.from_env(env), client, stream=stream).default


def _missing_key(endpoint: LlmEndpoint) -> str | None:
    """The key variable a vendor's own endpoint lacks. A server of your own (vLLM, Ollama,
    ...) may need no key, and says so with a 401 that ends the turn `stopped(provider_error)`."""
    if endpoint.kind == "scripted" or endpoint.api_key:
        return None
    vendor = _VENDOR_URLS[endpoint.kind]
    url = endpoint.base_url or vendor
    if urlsplit(url).hostname != urlsplit(vendor).hostname:
        return None
    return endpoint.key_variable


def _check_url(endpoint: LlmEndpoint) -> None:
    url = endpoint.base_url
    if url is not None and not url.startswith(("http://", "https://")):
        raise InvalidEnvironment(
            f"{endpoint.url_variable} must be an http:// or https:// URL",
            variable=endpoint.url_variable,
        )
