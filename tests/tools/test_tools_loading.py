from __future__ import annotations

from pathlib import Path

import pytest

from lash_tasks.errors import InvalidEnvironment
from lash_tasks.machine.messages import ToolCall
from lash_tasks.tools.contract import ToolContext, ToolResult
from lash_tasks.tools.loading import load_tool_providers, registry_from_env

MODULE = "lash_test_tool_providers"


@pytest.fixture(autouse=True)
def importable_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Import by path, as LASH_TOOLS would, without relying on pytest's rootdir handling.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def names(spec: str) -> list[str]:
    return [provider.name for provider in load_tool_providers(spec)]


def test_instance_class_factory_and_dotted_attribute() -> None:
    assert names(f"{MODULE}:provider_instance") == ["instance"]
    assert names(f"{MODULE}:EchoTools") == ["echo"]
    assert names(f"{MODULE}:make_provider") == ["factory"]
    assert names(f"{MODULE}:Holder.inner") == ["inner"]


def test_several_entries_with_whitespace_and_trailing_comma() -> None:
    spec = f" {MODULE}:provider_instance ,{MODULE}:make_provider, "
    assert names(spec) == ["instance", "factory"]


@pytest.mark.parametrize("spec", ["", " ", ",", " , "])
def test_empty_spec_loads_nothing(spec: str) -> None:
    assert load_tool_providers(spec) == []


@pytest.mark.parametrize(
    "entry",
    [
        "no_colon",
        f"{MODULE}:",
        ":attr",
        "bad-name:attr",
        "a..b:attr",
        f"{MODULE}:attr:extra",
        f"{MODULE}:1attr",
        "/some/file.py:attr",
    ],
)
def test_malformed_entries(entry: str) -> None:
    with pytest.raises(InvalidEnvironment, match=r"expected 'package\.module:attribute'") as info:
        load_tool_providers(f"{MODULE}:provider_instance,{entry}")
    assert repr(entry) in info.value.message
    assert info.value.details["entry"] == entry


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("lash_no_such_module_xyz:thing", "module 'lash_no_such_module_xyz' not found"),
        ("lash_tasks.no_such_module_xyz:thing", "module 'lash_tasks.no_such_module_xyz' not found"),
        ("lash_test_tool_broken_import:thing", "RuntimeError: module exploded on import"),
        ("lash_test_tool_missing_dependency:thing", "lash_no_such_dependency_xyz"),
        (f"{MODULE}:missing", f"'{MODULE}' has no attribute 'missing'"),
        (f"{MODULE}:Holder.missing", "has no attribute 'Holder.missing'"),
        (f"{MODULE}:not_a_provider", "int is not a tool provider"),
        (f"{MODULE}:make_nothing", "str is not a tool provider"),
        (f"{MODULE}:NeedsArguments", "calling it failed: TypeError"),
        (f"{MODULE}:broken_factory", "calling it failed: RuntimeError: factory exploded"),
    ],
)
def test_bad_entries_name_the_entry_and_the_reason(entry: str, reason: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        load_tool_providers(entry)
    message = info.value.message
    assert message.startswith(f"LASH_TOOLS entry {entry!r}: "), message
    assert reason in message


def test_missing_dependency_is_not_reported_as_missing_module() -> None:
    with pytest.raises(InvalidEnvironment, match="importing 'lash_test_tool_missing_dependency'"):
        load_tool_providers("lash_test_tool_missing_dependency:thing")


def test_registry_from_env_without_lash_tools_has_builtins() -> None:
    registry = registry_from_env({})
    assert registry.tool_names() == ["calculator", "write_file", "repeat_text", "sleep_ms"]
    assert registry.generation == 0


def test_registry_from_env_adds_lash_tools() -> None:
    registry = registry_from_env({"LASH_TOOLS": f"{MODULE}:EchoTools"})
    assert "echo_say" in registry.tool_names()
    result = registry.execute(
        ToolCall("c1", "echo_say", '{"text": "hi"}'), ToolContext("s", "t", "c1")
    )
    assert result == ToolResult("hi")


def test_registry_from_env_refuses_duplicate_tool_names() -> None:
    with pytest.raises(InvalidEnvironment, match="LASH_TOOLS: tool 'calculator'"):
        registry_from_env({"LASH_TOOLS": f"{MODULE}:ShadowsCalculator"})


def test_registry_from_env_refuses_duplicate_providers() -> None:
    spec = f"{MODULE}:EchoTools,{MODULE}:EchoTools"
    with pytest.raises(InvalidEnvironment, match="already registered"):
        registry_from_env({"LASH_TOOLS": spec})


def test_registry_from_env_propagates_bad_entries() -> None:
    with pytest.raises(InvalidEnvironment, match="nope"):
        registry_from_env({"LASH_TOOLS": "nope"})
