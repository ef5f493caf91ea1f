from __future__ import annotations

import httpx
import pytest

from lash_tasks.errors import InvalidEnvironment
from lash_tasks.providers import (
    AnthropicMessagesProvider,
    OpenAIChatProvider,
    ScriptedProvider,
    llm_provider_from_env,
)
from lash_tasks.providers.registry import LlmProviders, Unavailable
from lash_tasks.settings import Settings

OPENAI_KEY = "sk-openai-registry-secret-123456"
ANTHROPIC_KEY = "sk-ant-registry-secret-654321"


def test_default_is_scripted() -> None:
    assert isinstance(llm_provider_from_env({}), ScriptedProvider)
    assert isinstance(llm_provider_from_env({"LASH_PROVIDER": " "}), ScriptedProvider)


def test_scripted_reads_its_rules() -> None:
    provider = llm_provider_from_env(
        {"LASH_PROVIDER": "scripted", "LASH_SCRIPTED_RULES": '[{"match": "a", "text": "b"}]'}
    )
    assert isinstance(provider, ScriptedProvider)
    assert len(provider.rules) == 1


def test_openai_from_env(http_client: httpx.Client) -> None:
    env = {
        "LASH_PROVIDER": "OpenAI",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
    }
    provider = llm_provider_from_env(env, client=http_client)
    assert isinstance(provider, OpenAIChatProvider)
    assert provider.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert OPENAI_KEY not in repr(provider)
    provider.close()
    assert not http_client.is_closed


def test_openai_default_endpoint(http_client: httpx.Client) -> None:
    env = {"LASH_PROVIDER": "openai", "OPENAI_API_KEY": OPENAI_KEY}
    provider = llm_provider_from_env(env, http_client)
    assert isinstance(provider, OpenAIChatProvider)
    assert provider.url == "https://api.openai.com/v1/chat/completions"


def test_anthropic_from_env(http_client: httpx.Client) -> None:
    env = {"LASH_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    provider = llm_provider_from_env(env, client=http_client)
    assert isinstance(provider, AnthropicMessagesProvider)
    assert provider.url == "https://api.anthropic.com/v1/messages"
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:8080"
    provider = llm_provider_from_env(env, client=http_client)
    assert isinstance(provider, AnthropicMessagesProvider)
    assert provider.url == "http://127.0.0.1:8080/v1/messages"


@pytest.mark.parametrize(
    ("name", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_missing_key_names_the_variable(name: str, variable: str) -> None:
    # The other provider's key is set: it must not leak into the message.
    env = {"LASH_PROVIDER": name, "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "  "}
    env["ANTHROPIC_API_KEY" if name == "openai" else "OPENAI_API_KEY"] = ANTHROPIC_KEY
    with pytest.raises(InvalidEnvironment) as caught:
        llm_provider_from_env(env)
    assert variable in caught.value.message
    assert caught.value.details["variable"] == variable
    assert ANTHROPIC_KEY not in str(caught.value.to_dict())


def test_unknown_provider_lists_allowed_values() -> None:
    with pytest.raises(InvalidEnvironment) as caught:
        llm_provider_from_env({"LASH_PROVIDER": "gemini"})
    message = caught.value.message
    assert "LASH_PROVIDER" in message
    assert "'gemini'" in message
    for allowed in ("scripted", "openai", "anthropic"):
        assert allowed in message


def test_unknown_long_value_is_not_echoed() -> None:
    with pytest.raises(InvalidEnvironment) as caught:
        llm_provider_from_env({"LASH_PROVIDER": OPENAI_KEY})
    assert OPENAI_KEY.lower() not in caught.value.message.lower()


def test_bad_base_url() -> None:
    env = {"LASH_PROVIDER": "openai", "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "localhost"}
    with pytest.raises(InvalidEnvironment) as caught:
        llm_provider_from_env(env)
    assert caught.value.details["variable"] == "OPENAI_BASE_URL"


@pytest.mark.parametrize(
    ("name", "variable", "url"),
    [
        ("openai", "OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
        ("anthropic", "ANTHROPIC_BASE_URL", "http://127.0.0.1:8080"),
    ],
)
def test_own_endpoint_without_key_sends_no_authorization(
    name: str, variable: str, url: str, http_client: httpx.Client
) -> None:
    """A server of your own may need no key: the provider is built without one."""
    provider = llm_provider_from_env({"LASH_PROVIDER": name, variable: url}, http_client)
    assert "api_key=None" in repr(provider)
    headers = {k.lower() for k in provider._headers()}  # type: ignore[attr-defined]
    assert not headers & {"authorization", "x-api-key"}


@pytest.mark.parametrize(
    ("name", "variable", "url"),
    [
        ("openai", "OPENAI_BASE_URL", "https://api.openai.com/v1/"),
        ("anthropic", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    ],
)
def test_vendor_endpoint_spelled_out_still_needs_its_key(
    name: str, variable: str, url: str
) -> None:
    """Naming the vendor's endpoint explicitly does not waive its key."""
    key_variable = "OPENAI_API_KEY" if name == "openai" else "ANTHROPIC_API_KEY"
    with pytest.raises(InvalidEnvironment) as caught:
        llm_provider_from_env({"LASH_PROVIDER": name, variable: url})
    assert caught.value.details["variable"] == key_variable


@pytest.mark.parametrize(
    ("name", "kind"), [("openai", OpenAIChatProvider), ("anthropic", AnthropicMessagesProvider)]
)
def test_http_providers_stream_when_asked(name: str, kind: type, http_client: httpx.Client) -> None:
    """`stream=True` (the worker passes Settings.llm_stream) makes both HTTP providers ask
    for server-sent events; the default asks for one JSON body."""
    env = {"LASH_PROVIDER": name, "OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    streaming = llm_provider_from_env(env, http_client, stream=True)
    plain = llm_provider_from_env(env, http_client)
    assert isinstance(streaming, kind) and isinstance(plain, kind)
    assert streaming.stream and not plain.stream  # type: ignore[attr-defined]
    assert streaming._headers()["Accept"] == "text/event-stream"  # type: ignore[attr-defined]


# ── named endpoints: several providers per worker, chosen per session ────────────────────


def _providers(**env: str) -> LlmProviders:
    return LlmProviders.from_settings(Settings.from_env({"LASH_HOME": "/tmp/lash-reg", **env}))


def test_named_endpoints_join_the_built_in_providers() -> None:
    """LASH_PROVIDER_<NAME>_KIND declares a provider `name`; keyless own endpoints serve."""
    providers = _providers(
        LASH_PROVIDER_OLLAMA_KIND="openai",
        LASH_PROVIDER_OLLAMA_BASE_URL="http://127.0.0.1:11434/v1",
        LASH_PROVIDER_MY_CLAUDE_KIND="Anthropic",
        LASH_PROVIDER_MY_CLAUDE_API_KEY=ANTHROPIC_KEY,
    )
    assert providers.names == ("scripted", "openai", "anthropic", "my_claude", "ollama")
    ollama = providers.resolve("ollama")
    assert isinstance(ollama, OpenAIChatProvider)
    assert ollama.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert "api_key=None" in repr(ollama)
    assert providers.resolve("ollama") is ollama  # built once per process
    claude = providers.resolve("my_claude")
    assert isinstance(claude, AnthropicMessagesProvider)
    assert claude.url == "https://api.anthropic.com/v1/messages"
    assert ANTHROPIC_KEY not in repr(claude)
    providers.close()


def test_providers_without_credentials_are_unavailable_with_a_reason() -> None:
    """A vendor endpoint without its key, or a name not configured here, is not served;
    the reason names the variable, never a value."""
    providers = _providers(
        OPENAI_API_KEY="",
        LASH_PROVIDER_HOSTED_KIND="openai",
        LASH_PROVIDER_HOSTED_BASE_URL="https://api.openai.com/v1",
    )
    hosted = providers.resolve("hosted")
    assert isinstance(hosted, Unavailable)
    assert "LASH_PROVIDER_HOSTED_API_KEY is not set on this worker" in hosted.reason
    openai = providers.resolve("openai")
    assert isinstance(openai, Unavailable) and "OPENAI_API_KEY" in openai.reason
    missing = providers.resolve("gemini")
    assert isinstance(missing, Unavailable)
    assert missing.reason == (
        "LLM provider 'gemini' is not configured on this worker (it serves: scripted)"
    )


def test_default_provider_may_be_a_named_endpoint() -> None:
    providers = _providers(
        LASH_PROVIDER="local",
        LASH_PROVIDER_LOCAL_KIND="openai",
        LASH_PROVIDER_LOCAL_BASE_URL="http://127.0.0.1:8000/v1",
    )
    assert isinstance(providers.default, OpenAIChatProvider)
    assert providers.default_name == "local"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LASH_PROVIDER_OLLAMA_BASE_URL": "http://127.0.0.1:1/v1"}, "LASH_PROVIDER_OLLAMA_KIND"),
        ({"LASH_PROVIDER_OLLAMA_KIND": "gemini"}, "LASH_PROVIDER_OLLAMA_KIND"),
        ({"LASH_PROVIDER_OPENAI_KIND": "openai"}, "LASH_PROVIDER_OPENAI_KIND"),
        (
            {"LASH_PROVIDER_X_KIND": "openai", "LASH_PROVIDER_X_BASE_URL": "localhost:1"},
            "LASH_PROVIDER_X_BASE_URL",
        ),
    ],
)
def test_bad_named_endpoint_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidEnvironment) as caught:
        _providers(**env)
    assert caught.value.details["variable"] == variable
    assert variable in caught.value.message
