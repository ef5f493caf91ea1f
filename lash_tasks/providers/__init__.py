"""LLM providers: the protocol, the wire formats, and the OpenAI, Anthropic and scripted ones."""

from lash_tasks.providers.anthropic_messages import AnthropicMessagesProvider
from lash_tasks.providers.base import DEFAULT_TIMEOUT, LlmProvider, RetryPolicy, send_with_retry
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
