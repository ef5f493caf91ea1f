"""Choosing the LLM provider from the environment."""

from __future__ import annotations

from collections.abc import Mapping
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

PROVIDER_ENV = "LASH_PROVIDER"
PROVIDER_NAMES = ("scripted", "openai", "anthropic")


def llm_provider_from_env(
    env: Mapping[str, str], client: httpx.Client | None = None, *, stream: bool = False
) -> LlmProvider:
    """The provider named by LASH_PROVIDER (default `scripted`), configured from `env`.

    With `stream` the HTTP providers ask for their answers as server-sent events, so text
    reaches `on_text_delta` as the model writes it (`Settings.llm_stream`: on when live
    events are). The scripted provider always hands out its answer in pieces.

    Errors name the variable at fault but never repeat a value that might be a secret.
    """
    choice = env.get(PROVIDER_ENV, "").strip().lower() or "scripted"
    if choice == "scripted":
        return ScriptedProvider.from_env(env)
    if choice == "openai":
        url = _base_url(env, "OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL)
        key = _api_key(
            env, "OPENAI_API_KEY", choice, required=_vendor(url, DEFAULT_OPENAI_BASE_URL)
        )
        return OpenAIChatProvider(url, key, client=client, stream=stream)
    if choice == "anthropic":
        url = _base_url(env, "ANTHROPIC_BASE_URL", DEFAULT_ANTHROPIC_BASE_URL)
        key = _api_key(
            env, "ANTHROPIC_API_KEY", choice, required=_vendor(url, DEFAULT_ANTHROPIC_BASE_URL)
        )
        return AnthropicMessagesProvider(url, key, client=client, stream=stream)
    # The bad value is only echoed when short: a secret pasted into the wrong variable
    # should not end up in a log.
    shown = f" {choice!r}" if len(choice) <= 20 else ""
    raise InvalidEnvironment(
        f"{PROVIDER_ENV}{shown} is not one of: {', '.join(PROVIDER_NAMES)}",
        variable=PROVIDER_ENV,
        allowed=list(PROVIDER_NAMES),
    )


def _api_key(env: Mapping[str, str], variable: str, choice: str, *, required: bool) -> str | None:
    """The key, if set. The vendor's own endpoint always needs one; a server of your own
    (OPENAI_BASE_URL pointing at vLLM, Ollama, ...) may not, and says so with a 401 that
    ends the turn `stopped(provider_error)`."""
    key = env.get(variable, "").strip()
    if not key and required:
        raise InvalidEnvironment(
            f"{variable} must be set when {PROVIDER_ENV}={choice} uses the vendor's endpoint",
            variable=variable,
        )
    return key or None


def _vendor(url: str, default: str) -> bool:
    return urlsplit(url).hostname == urlsplit(default).hostname


def _base_url(env: Mapping[str, str], variable: str, default: str) -> str:
    url = env.get(variable, "").strip() or default
    if not url.startswith(("http://", "https://")):
        raise InvalidEnvironment(
            f"{variable} must be an http:// or https:// URL", variable=variable
        )
    return url
