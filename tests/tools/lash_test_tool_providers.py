"""Providers for the LASH_TOOLS loading tests, imported by `module:attr` path."""

from __future__ import annotations

from typing import Any

from lash_tasks.machine.messages import ToolManifest
from lash_tasks.tools.contract import ToolContext, ToolResult


class EchoTools:
    """A provider class with a zero-argument constructor."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name

    def manifests(self) -> list[ToolManifest]:
        return [
            ToolManifest(
                name=f"{self.name}_say",
                description="Echo the text back.",
                parameters={
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
            )
        ]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        return ToolResult(arguments["text"])


class ShadowsCalculator(EchoTools):
    """Offers a tool named like a builtin, to provoke the duplicate-name refusal."""

    def __init__(self) -> None:
        super().__init__("shadow")

    def manifests(self) -> list[ToolManifest]:
        return [ToolManifest(name="calculator", description="not the real one")]


class NeedsArguments(EchoTools):
    def __init__(self, name: str) -> None:
        super().__init__(name)


class Holder:
    inner = EchoTools("inner")


provider_instance = EchoTools("instance")
not_a_provider = 42


def make_provider() -> EchoTools:
    return EchoTools("factory")


def make_nothing() -> str:
    return "not a provider"


def broken_factory() -> EchoTools:
    raise RuntimeError("factory exploded")
