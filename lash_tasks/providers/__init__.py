"""LLM providers: the protocol (`llm_provider`), the retrying HTTP send (`http_send`), the wire
formats, and the OpenAI, Anthropic and scripted providers."""

from lash_tasks.providers.anthropic_messages import AnthropicMessagesProvider
from lash_tasks.providers.http_send import DEFAULT_TIMEOUT, RetryPolicy, send_with_retry
from lash_tasks.providers.llm_provider import LlmProvider
from lash_tasks.providers.openai_chat import OpenAIChatProvider
from lash_tasks.providers.registry import llm_provider_from_env
from lash_tasks.providers.scripted import (
    ScriptedProvider,
    ScriptedToolCall,
    ScriptRule,
    load_rules,
    read_call_log,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AnthropicMessagesProvider",
    "LlmProvider",
    "OpenAIChatProvider",
    "RetryPolicy",
    "ScriptRule",
    "ScriptedProvider",
    "ScriptedToolCall",
    "llm_provider_from_env",
    "load_rules",
    "read_call_log",
    "send_with_retry",
]
