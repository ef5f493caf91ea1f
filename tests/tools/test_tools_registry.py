from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from lash_tasks.errors import (
    ConfigurationError,
    LeaseLost,
    SchemaVersionError,
    StaleToolSurface,
    ToolError,
    ValidationError,
)
from lash_tasks.machine.messages import ToolCall, ToolManifest
from lash_tasks.tools.contract import ToolContext, ToolProvider, ToolResult
from lash_tasks.tools.registry import ToolRegistry

CTX = ToolContext(session_id="s1", turn_id="t1", call_id="c1")


def manifest(name: str, **properties: Any) -> ToolManifest:
    return ToolManifest(
        name=name,
        description=f"{name} tool",
        parameters={
            "type": "object",
            "properties": properties,
            "required": sorted(properties),
            "additionalProperties": False,
        },
    )


@dataclass
class FakeProvider:
    """Behaviour per tool: a ToolResult, an exception to raise, or any other return value."""

    name: str
    tools: dict[str, Any] = field(default_factory=dict)
    schemas: dict[str, ToolManifest] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any], ToolContext]] = field(default_factory=list)

    def manifests(self) -> list[ToolManifest]:
        return [self.schemas.get(n, manifest(n)) for n in self.tools]

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        self.calls.append((tool_name, arguments, context))
        behaviour = self.tools[tool_name]
        if isinstance(behaviour, BaseException):
            raise behaviour
        result: ToolResult = behaviour
        return result


def call(name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(call_id="c1", name=name, arguments=arguments)


def test_fake_provider_satisfies_the_protocol() -> None:
    assert isinstance(FakeProvider("p"), ToolProvider)


# --- generation rules -------------------------------------------------------------------


def test_constructor_providers_are_generation_zero() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    assert registry.generation == 0
    assert registry.tool_names() == ["one"]


def test_adding_and_removing_providers_bumps_generation() -> None:
    registry = ToolRegistry()
    assert registry.add_provider(FakeProvider("a", {"one": ToolResult("1")})) == 1
    assert registry.add_provider(FakeProvider("b", {"two": ToolResult("2")})) == 2
    assert registry.tool_names() == ["one", "two"]
    assert registry.remove_provider("a") == 3
    assert registry.generation == 3
    assert registry.tool_names() == ["two"]


def test_removing_unknown_provider_is_refused() -> None:
    registry = ToolRegistry()
    with pytest.raises(ConfigurationError, match="nope"):
        registry.remove_provider("nope")
    assert registry.generation == 0


def test_snapshot_is_json_with_generation_and_manifests() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    registry.add_provider(FakeProvider("b", {"two": ToolResult("2")}))
    snapshot = registry.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["generation"] == 1
    assert [(t["provider"], t["manifest"]["name"]) for t in snapshot["tools"]] == [
        ("a", "one"),
        ("b", "two"),
    ]
    assert snapshot["tools"][0]["manifest"] == manifest("one").to_json()


def test_snapshot_is_a_copy() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    registry.snapshot()["tools"][0]["manifest"]["parameters"]["type"] = "string"
    assert registry.manifests()[0].parameters["type"] == "object"


def test_restore_adopts_the_snapshot_generation() -> None:
    source = ToolRegistry([FakeProvider("a", {"one": ToolResult("1"), "two": ToolResult("2")})])
    for _ in range(7):
        source.remove_provider("a")
        source.add_provider(FakeProvider("a", {"one": ToolResult("1")}))
    snapshot = source.snapshot()
    assert snapshot["generation"] == 14

    fresh = ToolRegistry([FakeProvider("a", {"one": ToolResult("1"), "two": ToolResult("2")})])
    fresh.restore(snapshot)
    assert fresh.generation == 14
    assert fresh.tool_names() == ["one"]
    # Restoring a lower generation is adoption too, not a compare-and-set.
    fresh.restore({**snapshot, "generation": 3})
    assert fresh.generation == 3


def test_apply_with_stale_generation_is_refused() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1"), "two": ToolResult("2")})])
    registry.add_provider(FakeProvider("b", {"three": ToolResult("3")}))
    snapshot = registry.snapshot()
    with pytest.raises(StaleToolSurface) as info:
        registry.apply(snapshot, expected_generation=0)
    assert info.value.details == {"expected": 0, "current": 1}
    assert registry.generation == 1
    assert registry.tool_names() == ["one", "two", "three"]


def test_apply_success_bumps_generation_and_sets_the_surface() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1"), "two": ToolResult("2")})])
    snapshot = registry.snapshot()
    snapshot["tools"] = [t for t in snapshot["tools"] if t["manifest"]["name"] == "two"]
    assert registry.apply(snapshot, expected_generation=0) == 1
    assert registry.generation == 1
    assert registry.tool_names() == ["two"]
    # The same expectation a second time is now stale.
    with pytest.raises(StaleToolSurface):
        registry.apply(snapshot, expected_generation=0)
    assert registry.execute(call("one"), CTX).is_error


def test_apply_refuses_tools_no_provider_offers() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    snapshot = registry.snapshot()
    snapshot["tools"].append({"provider": "x", "manifest": manifest("ghost").to_json()})
    with pytest.raises(ValidationError, match="ghost"):
        registry.apply(snapshot, expected_generation=0)
    assert registry.generation == 0


def test_restore_tolerates_tools_no_provider_offers() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    registry.restore(
        {"version": 1, "generation": 5, "tools": [{"provider": "x", "manifest": {"name": "ghost"}}]}
    )
    assert registry.generation == 5
    assert registry.tool_names() == []
    result = registry.execute(call("ghost"), CTX)
    assert result.is_error and "ghost" in result.text


def test_provider_added_after_apply_is_active() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1"), "two": ToolResult("2")})])
    snapshot = registry.snapshot()
    snapshot["tools"] = snapshot["tools"][:1]
    registry.apply(snapshot, expected_generation=0)
    registry.add_provider(FakeProvider("b", {"three": ToolResult("3")}))
    assert registry.tool_names() == ["one", "three"]


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"version": 2, "generation": 0, "tools": []},
        {"version": 1, "generation": -1, "tools": []},
        {"version": 1, "generation": "3", "tools": []},
        {"version": 1, "generation": True, "tools": []},
        {"version": 1, "generation": 0},
        {"version": 1, "generation": 0, "tools": [{"name": "one"}]},
    ],
)
def test_malformed_snapshots_are_refused(snapshot: dict[str, Any]) -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    with pytest.raises(SchemaVersionError):
        registry.restore(snapshot)
    with pytest.raises(SchemaVersionError):
        registry.apply(snapshot, expected_generation=0)
    assert registry.generation == 0


# --- registration -----------------------------------------------------------------------


def test_duplicate_tool_names_across_providers_are_refused() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    with pytest.raises(ConfigurationError, match=r"'one'.*'b'.*'a'") as info:
        registry.add_provider(FakeProvider("b", {"one": ToolResult("1"), "two": ToolResult("2")}))
    assert info.value.details["existing_provider"] == "a"
    # Nothing of the refused provider was registered.
    assert registry.generation == 0
    assert registry.tool_names() == ["one"]
    assert [p.name for p in registry.providers] == ["a"]


def test_duplicate_tool_names_in_constructor_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        ToolRegistry(
            [
                FakeProvider("a", {"one": ToolResult("1")}),
                FakeProvider("b", {"one": ToolResult("")}),
            ]
        )


def test_duplicate_tool_name_within_one_provider_is_refused() -> None:
    provider = FakeProvider("a", {"one": ToolResult("1")})
    provider.manifests = lambda: [manifest("one"), manifest("one")]  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError, match="'one'"):
        ToolRegistry([provider])


def test_duplicate_provider_names_are_refused() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.add_provider(FakeProvider("a", {"two": ToolResult("2")}))


@pytest.mark.parametrize(
    "bad",
    [
        ToolManifest(name="has space", description="d"),
        ToolManifest(name="", description="d"),
        ToolManifest(name="x" * 65, description="d"),
        ToolManifest(name="ok", description="d", parameters={"type": "string"}),
        ToolManifest(name="ok", description="d", parameters={"type": "object", "required": 1}),
    ],
)
def test_bad_manifests_are_refused(bad: ToolManifest) -> None:
    provider = FakeProvider("a")
    provider.manifests = lambda: [bad]  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError):
        ToolRegistry([provider])


def test_provider_without_name_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        ToolRegistry([FakeProvider("")])


# --- execute never raises for bad model input -------------------------------------------


def test_unknown_tool_names_the_tool_and_lists_known_tools() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1"), "two": ToolResult("2")})])
    result = registry.execute(call("three"), CTX)
    assert result.is_error
    assert result.text == "unknown tool 'three'; known tools: one, two"


def test_unknown_tool_with_empty_registry() -> None:
    result = ToolRegistry().execute(call("x"), CTX)
    assert result.is_error and "(none)" in result.text


@pytest.mark.parametrize("arguments", ["{not json", "{'a': 1}", "[1, 2", "nul"])
def test_arguments_that_are_not_json(arguments: str) -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    result = registry.execute(call("one", arguments), CTX)
    assert result.is_error
    assert result.text.startswith("arguments for tool 'one' are not valid JSON")


@pytest.mark.parametrize(
    ("arguments", "kind"), [("[1]", "array"), ('"x"', "string"), ("3", "integer"), ("null", "null")]
)
def test_arguments_that_are_not_an_object(arguments: str, kind: str) -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    result = registry.execute(call("one", arguments), CTX)
    assert result.is_error
    assert result.text == f"arguments for tool 'one' must be a JSON object, got {kind}"


def test_deeply_nested_json_is_an_error_result() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolResult("1")})])
    result = registry.execute(call("one", "[" * 100_000), CTX)
    assert result.is_error and "not valid JSON" in result.text


def test_empty_arguments_mean_no_arguments() -> None:
    provider = FakeProvider("a", {"one": ToolResult("1")})
    registry = ToolRegistry([provider])
    assert registry.execute(call("one", ""), CTX) == ToolResult("1")
    assert provider.calls[0][1] == {}


def test_schema_failure_lists_problems_and_does_not_call_the_tool() -> None:
    provider = FakeProvider(
        "calc",
        {"add": ToolResult("3")},
        {"add": manifest("add", a={"type": "integer"}, b={"type": "integer"})},
    )
    registry = ToolRegistry([provider])
    result = registry.execute(call("add", '{"a": "1", "c": 2}'), CTX)
    assert result.is_error
    assert result.text == (
        "invalid arguments for tool 'add': b: required; "
        "a: expected integer, got string; c: unexpected property"
    )
    assert provider.calls == []


def test_valid_call_reaches_the_provider_with_context() -> None:
    provider = FakeProvider(
        "calc", {"add": ToolResult("3")}, {"add": manifest("add", a={"type": "integer"})}
    )
    registry = ToolRegistry([provider])
    assert registry.execute(call("add", '{"a": 1}'), CTX) == ToolResult("3")
    assert provider.calls == [("add", {"a": 1}, CTX)]


def test_tool_error_message_is_shown_as_is() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": ToolError("the disk is full")})])
    assert registry.execute(call("one"), CTX) == ToolResult("the disk is full", is_error=True)


def test_exception_inside_a_tool_becomes_an_error_result() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": RuntimeError("boom")})])
    result = registry.execute(call("one"), CTX)
    assert result == ToolResult("tool 'one' failed: RuntimeError: boom", is_error=True)


def test_tool_returning_something_else_becomes_an_error_result() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": "plain string"})])
    result = registry.execute(call("one"), CTX)
    assert result.is_error and "returned str" in result.text


def test_reraise_lets_listed_exceptions_through() -> None:
    registry = ToolRegistry(
        [FakeProvider("a", {"one": LeaseLost("fence gone")})], reraise=(LeaseLost,)
    )
    with pytest.raises(LeaseLost):
        registry.execute(call("one"), CTX)


def test_keyboard_interrupt_is_not_swallowed() -> None:
    registry = ToolRegistry([FakeProvider("a", {"one": KeyboardInterrupt()})])
    with pytest.raises(KeyboardInterrupt):
        registry.execute(call("one"), CTX)


# --- ToolResult -------------------------------------------------------------------------


def test_tool_result_json_round_trip() -> None:
    result = ToolResult("done", is_error=True, attachments=("att_1", "att_2"))
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data
    assert ToolResult.from_json(data) == result
    assert ToolResult.from_json({"text": "x"}) == ToolResult("x")


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"text": 1},
        {"text": "x", "is_error": "yes"},
        {"text": "x", "attachments": "att"},
        {"text": "x", "attachments": [1]},
    ],
)
def test_tool_result_from_bad_json(data: Any) -> None:
    with pytest.raises(SchemaVersionError):
        ToolResult.from_json(data)


def test_tool_result_to_message() -> None:
    message = ToolResult("oops", is_error=True, attachments=("a1",)).to_message("c1", "calc")
    assert message.role == "tool"
    assert (message.text, message.tool_call_id, message.name) == ("oops", "c1", "calc")
    assert message.is_error and message.attachments == ("a1",)


@dataclass
class BackgroundProvider:
    """One tool, declared background with `declared`."""

    declared: Any
    name: str = "bg"

    def manifests(self) -> list[ToolManifest]:
        return [manifest("crunch", n={"type": "integer"})]

    @property
    def background_tools(self) -> Any:
        return self.declared

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        return ToolResult(f"crunched {arguments['n']}")


def test_a_background_declaration_names_the_tool_and_its_disposition() -> None:
    """`background` answers the declared disposition of an active tool, None otherwise; the
    run itself is an ordinary execute."""
    registry = ToolRegistry([BackgroundProvider({"crunch": "owner_bound"})])
    assert registry.background("crunch") == "owner_bound"
    assert registry.background("nope") is None
    call = ToolCall("c1", "crunch", '{"n": 2}')
    assert registry.check(call) is None
    assert registry.execute(call, CTX).text == "crunched 2"
    bad = registry.check(ToolCall("c2", "crunch", '{"n": "two"}'))
    assert bad is not None and bad.is_error and "invalid arguments" in bad.text


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"other": "rerunnable"}, "offers no such tool"),
        ({"crunch": "externally_owned"}, "disposition must be one of"),
        ({"crunch": None}, "disposition must be one of"),
        (["crunch"], "must be a mapping"),
    ],
)
def test_a_bad_background_declaration_is_refused_at_registration(
    declared: Any, problem: str
) -> None:
    """A provider declaring a tool it lacks, or no valid disposition, is a wiring error."""
    with pytest.raises(ConfigurationError, match=problem):
        ToolRegistry([BackgroundProvider(declared)])
